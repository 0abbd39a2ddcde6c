"""Scheduled releases and notify targets: the `[[schedules]]` and `[[notify]]` tables of the config.

```toml
[[schedules]]
dataset = "jane/flowers"
cron = "0 2 * * *"            # minute hour day-of-month month day-of-week, in UTC
name = "nightly-{date}"       # {date} YYYY-MM-DD, {datetime} YYYYMMDD-HHMM, {dataset} "flowers"
description = "Nightly export"

[[notify]]
name = "ops-chat"
url_env = "RELAY_NOTIFY_OPS_CHAT_URL"   # or url = "https://..." when the URL holds no token
secret_env = ["RELAY_NOTIFY_OPS_CHAT_SECRET"]   # whsec_... (two while rotating)
```

Like sources, secrets (and URLs that embed a token) are named by environment variable, never written
into the file. Each notify URL is checked here, at start-up: https only and no private, loopback or
link-local address, unless the target says `allow_http = true` / `allow_private = true`.
"""

from __future__ import annotations

import calendar
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from config.errors import ConfigError
from config.sources import DATASET_PATTERN
from relay.hooks.standard_webhooks import signing_key
from relay.notify import Resolver, url_problems

# What the API takes as a release name here: it becomes one URL path segment.
RELEASE_NAME_PATTERN = r"^[^/\s\x00-\x1f](?:[^/\x00-\x1f]{0,198}[^/\s\x00-\x1f])?$"
RELEASE_NAME_RULE = "1 to 200 characters, no '/', no control characters, no outer spaces"
NAME_FIELDS = ("date", "datetime", "dataset")

# (name, lowest, highest) of the five cron fields, in order.
CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
MONTH_NAMES = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# Day of month and day of week must both match (Celery's crontab rule); such a date recurs
# within 28 years, so looking back this far finds the last slot of any valid expression.
MAX_LOOKBACK_DAYS = 366 * 29
_ITEM = re.compile(r"^(\*|[a-z0-9]+)(?:-([a-z0-9]+))?(?:/([0-9]+))?$")


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression in UTC: the sets of values each field allows."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    starred: tuple[bool, ...]  # which of the five fields were "*"

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse "m h dom mon dow"; ValueError saying which field is wrong and why."""
        parts = expression.split()
        if len(parts) != 5:
            raise ValueError(
                f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
            )
        sets = []
        for text, (what, low, high) in zip(parts, CRON_FIELDS, strict=True):
            names = MONTH_NAMES if what == "month" else DAY_NAMES if what == "day of week" else {}
            sets.append(_cron_field(text.lower(), what, low, high, names))
        minutes, hours, days, months, weekdays = sets
        weekdays = frozenset(d % 7 for d in weekdays)
        if not any(day <= _longest_month(month) for month in months for day in days):
            raise ValueError("the day of month never occurs in the given months")
        starred = tuple(part == "*" for part in parts)
        return cls(expression, minutes, hours, days, months, weekdays, starred)

    def matches_day(self, day: date) -> bool:
        return (
            day.day in self.days
            and day.month in self.months
            and day.isoweekday() % 7 in self.weekdays
        )

    def last_slot(self, now: datetime) -> datetime:
        """The most recent time at or before `now` (UTC) that this expression fires."""
        now = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC)
        today = now.date()
        for offset in range(MAX_LOOKBACK_DAYS):
            day = today - timedelta(days=offset)
            if not self.matches_day(day):
                continue
            for hour in sorted(self.hours, reverse=True):
                if offset == 0 and hour > now.hour:
                    continue
                limit = now.minute if offset == 0 and hour == now.hour else 59
                minutes = [m for m in self.minutes if m <= limit]
                if minutes:
                    return datetime(day.year, day.month, day.day, hour, max(minutes), tzinfo=UTC)
        raise ValueError(f"cron {self.expression!r} has not fired in {MAX_LOOKBACK_DAYS} days")

    def celery_fields(self) -> dict[str, str]:
        """Keyword arguments for `celery.schedules.crontab` firing at the same times."""
        values = (self.minutes, self.hours, self.days, self.months, self.weekdays)
        names = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        return {
            name: "*" if starred else ",".join(map(str, sorted(value)))
            for name, value, starred in zip(names, values, self.starred, strict=True)
        }


def _longest_month(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]


def _cron_field(text: str, what: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    def number(token: str) -> int:
        value = names.get(token) if token in names else int(token) if token.isdigit() else None
        if value is None:
            kind = "a number or a name such as " + next(iter(names)) if names else "a number"
            raise ValueError(f"{what}: {token!r} is not {kind}")
        if not low <= value <= high:
            raise ValueError(f"{what}: {value} is outside {low}-{high}")
        return value

    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            raise ValueError(f"{what}: cannot read {item!r}")
        start, end, step = match.groups()
        if start == "*":
            if end is not None:
                raise ValueError(f"{what}: cannot read {item!r}")
            first, last = low, high
        else:
            first = number(start)
            # "5/15" means from 5 to the end, every 15, as in Vixie cron.
            last = number(end) if end is not None else (high if step else first)
        if first > last:
            raise ValueError(f"{what}: the range {item!r} runs backwards")
        stride = int(step) if step else 1
        if stride < 1:
            raise ValueError(f"{what}: the step in {item!r} must be at least 1")
        values.update(range(first, last + 1, stride))
    return frozenset(values)


def render_name(template: str, slot: datetime, dataset: str) -> str:
    """Fill a release name (or description) template for a scheduled slot (UTC)."""
    return template.format(
        date=slot.strftime("%Y-%m-%d"),
        datetime=slot.strftime("%Y%m%d-%H%M"),
        dataset=dataset.split("/", 1)[-1],
    )


def _template_problems(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"bad template syntax: {exc}"]
    problems = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in NAME_FIELDS:
            problems.append(f"unknown field {{{name}}}; use one of {', '.join(NAME_FIELDS)}")
        elif spec or conversion:
            problems.append(f"{{{name}}} takes no format spec or conversion")
    return problems


def _valid_template(value: str) -> None:
    problems = _template_problems(value)
    if problems:
        raise ValidationError(problems)


def _valid_cron(value: str) -> None:
    try:
        Cron.parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


@dataclass(frozen=True)
class Schedule:
    """One `[[schedules]]` table: cut a release of `dataset` whenever `cron` fires."""

    index: int  # position in the file; beat runs `cut_scheduled_release(index)`
    dataset: str
    cron: Cron
    name: str  # template
    description: str = ""  # template

    def name_for(self, slot: datetime) -> str:
        return render_name(self.name, slot, self.dataset)

    def description_for(self, slot: datetime) -> str:
        return render_name(self.description, slot, self.dataset)


@dataclass(frozen=True)
class NotifyTarget:
    """One `[[notify]]` table: where ended releases are reported, and how messages are signed."""

    name: str
    # Hidden from repr: chat webhook URLs carry their token in the path.
    url: str = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)  # whsec_..., two while rotating
    allow_http: bool = False
    allow_private: bool = False


class _ScheduleSchema(Schema):
    class Meta:
        unknown = RAISE

    dataset = fields.String(
        required=True, validate=validate.Regexp(DATASET_PATTERN, error="must be 'owner/name'")
    )
    cron = fields.String(required=True, validate=_valid_cron)
    name = fields.String(required=True, validate=[validate.Length(min=1), _valid_template])
    description = fields.String(load_default="", validate=_valid_template)

    @validates_schema
    def _check_rendered_name(self, data: dict[str, Any], **_: Any) -> None:
        example = render_name(data["name"], datetime(2026, 11, 27, 2, 0, tzinfo=UTC), "o/d")
        if not re.match(RELEASE_NAME_PATTERN, example):
            raise ValidationError(
                f"renders to {example!r}, not a valid release name ({RELEASE_NAME_RULE})", "name"
            )


class _NotifySchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]*$", error="use a-z, 0-9, _ and -"),
    )
    url = fields.String(load_default=None)
    url_env = fields.String(load_default=None)
    secret_env = fields.List(fields.String(), required=True, validate=validate.Length(min=1, max=2))
    allow_http = fields.Boolean(load_default=False)
    allow_private = fields.Boolean(load_default=False)

    @validates_schema
    def _one_url(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("url") is None) == (data.get("url_env") is None):
            raise ValidationError("set exactly one of url and url_env", "url")


class _FileSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    schedules = fields.List(fields.Nested(_ScheduleSchema), load_default=list)
    notify = fields.List(fields.Nested(_NotifySchema), load_default=list)


def load_releases(
    path: str | Path, environ: Mapping[str, str], *, resolve: Resolver | None = None
) -> tuple[tuple[Schedule, ...], tuple[NotifyTarget, ...]]:
    """Read the schedules and notify targets of a config file; ConfigError naming each problem.

    The file itself was already read and checked by `load_sources`.
    """
    path = Path(path)
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        data = _FileSchema().load(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, raw, exc.messages)) from None
    schedules = tuple(
        Schedule(
            index=i,
            dataset=item["dataset"],
            cron=Cron.parse(item["cron"]),
            name=item["name"],
            description=item["description"],
        )
        for i, item in enumerate(data["schedules"])
    )
    return schedules, _notify_targets(path, data["notify"], environ, resolve)


def _notify_targets(
    path: Path, items: list[dict[str, Any]], environ: Mapping[str, str], resolve: Resolver | None
) -> tuple[NotifyTarget, ...]:
    problems: list[str] = []
    targets: list[NotifyTarget] = []
    seen: set[str] = set()
    for item in items:
        name = item["name"]
        where = f"{path}: notify '{name}'"
        if name in seen:
            problems.append(f"{where}: name: used twice")
        seen.add(name)
        url = item["url"]
        if item["url_env"] is not None:
            url = environ.get(item["url_env"])
            if not url:
                problems.append(
                    f"{where}: url_env: environment variable {item['url_env']} is not set"
                )
        secrets = []
        for var in item["secret_env"]:
            secret = environ.get(var)
            if not secret:
                problems.append(f"{where}: secret_env: environment variable {var} is not set")
                continue
            try:
                if not secret.startswith("whsec_"):
                    raise ValueError
                signing_key(secret)
            except ValueError:
                # Name the variable, never its value.
                problems.append(f"{where}: secret_env: {var} must hold 'whsec_' followed by base64")
                continue
            secrets.append(secret)
        if url:
            checks = url_problems(
                url,
                allow_http=item["allow_http"],
                allow_private=item["allow_private"],
                **({"resolve": resolve} if resolve is not None else {}),
            )
            problems.extend(f"{where}: url: {problem}" for problem in checks)
        targets.append(
            NotifyTarget(
                name=name,
                url=url or "",
                secrets=tuple(secrets),
                allow_http=item["allow_http"],
                allow_private=item["allow_private"],
            )
        )
    if problems:
        raise ConfigError(problems)
    return tuple(targets)


def _describe(path: Path, raw: dict[str, Any], messages: Any) -> list[str]:
    """Flatten marshmallow's messages into 'file: schedule #1: field: message' lines."""
    lines: list[str] = []
    for table, value in (messages or {}).items():
        if table not in ("schedules", "notify") or not isinstance(value, dict):
            lines.append(f"{path}: {table}: {_text(value)}")
            continue
        items = raw.get(table) if isinstance(raw.get(table), list) else []
        for index, errors in value.items():
            label = _label(table, items, index)
            if not isinstance(errors, dict):
                lines.append(f"{path}: {label}: {_text(errors)}")
                continue
            for name, message in errors.items():
                lines.append(f"{path}: {label}: {name}: {_text(message)}")
    return lines


def _label(table: str, items: list[Any], index: Any) -> str:
    if table == "notify" and isinstance(index, int) and index < len(items):
        name = items[index].get("name") if isinstance(items[index], dict) else None
        if isinstance(name, str):
            return f"notify '{name}'"
    number = index + 1 if isinstance(index, int) else index
    if table == "notify":
        return f"notify #{number}"
    item = items[index] if isinstance(index, int) and index < len(items) else None
    dataset = item.get("dataset") if isinstance(item, dict) else None
    return f"schedule #{number} ({dataset})" if isinstance(dataset, str) else f"schedule #{number}"


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return "; ".join(map(str, value)) if isinstance(value, list) else str(value)
