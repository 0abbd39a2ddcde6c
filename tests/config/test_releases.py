"""Schedules and notify targets in the config file: cron, name templates, URL checks, secrets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery.schedules import crontab

from config import ConfigError, Settings
from config.releases import Cron, load_releases, render_name

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
ADDRESSES = {"hooks.example.com": ["93.184.216.34"], "intranet.example.com": ["10.1.2.3"]}
SOURCES = """
[[sources]]
name = "s3"
type = "s3"
verify = false
"""


def resolve(host: str) -> list[str]:
    if host not in ADDRESSES:
        raise OSError(host)
    return ADDRESSES[host]


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- cron --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "minutes", "hours", "days", "months", "weekdays"),
    [
        ("0 2 * * *", {0}, {2}, set(range(1, 32)), set(range(1, 13)), set(range(7))),
        ("*/15 * * * *", {0, 15, 30, 45}, set(range(24)), None, None, None),
        ("5/20 9-17/4 * * *", {5, 25, 45}, {9, 13, 17}, None, None, None),
        ("30 3 1,15 * *", {30}, {3}, {1, 15}, None, None),
        ("0 0 * jan,jul sun", {0}, {0}, None, {1, 7}, {0}),
        ("0 0 * * 7", {0}, {0}, None, None, {0}),
        ("0 0 * * mon-fri", {0}, {0}, None, None, {1, 2, 3, 4, 5}),
        ("0 0 29 2 *", {0}, {0}, {29}, {2}, None),
        ("  0   2 * *   * ", {0}, {2}, None, None, None),
    ],
)
def test_cron_parses_each_field(expression, minutes, hours, days, months, weekdays):
    cron = Cron.parse(expression)
    assert cron.minutes == minutes
    assert cron.hours == hours
    for got, want in ((cron.days, days), (cron.months, months), (cron.weekdays, weekdays)):
        if want is not None:
            assert got == want


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 2 * *", "expected 5 fields"),
        ("0 2 * * * *", "expected 5 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("0 0 0 * *", "day of month: 0 is outside 1-31"),
        ("0 0 * 13 *", "month: 13 is outside 1-12"),
        ("0 0 * * 8", "day of week: 8 is outside 0-7"),
        ("0 0 31 2 *", "never occurs"),
        ("0 0 30,31 2 *", "never occurs"),
        ("a * * * *", "minute: 'a' is not a number"),
        ("0 0 * * funday", "day of week: 'funday' is not a number or a name such as sun"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "at least 1"),
        ("1-2-3 * * * *", "cannot read"),
        ("*-5 * * * *", "cannot read"),
        (",5 * * * *", "cannot read"),
    ],
)
def test_cron_names_what_is_wrong(expression, problem):
    with pytest.raises(ValueError, match=problem):
        Cron.parse(expression)


@pytest.mark.parametrize(
    ("expression", "now", "slot"),
    [
        ("0 2 * * *", at(2026, 11, 27, 3, 15), at(2026, 11, 27, 2, 0)),
        ("0 2 * * *", at(2026, 11, 27, 2, 0, 30), at(2026, 11, 27, 2, 0)),
        ("0 2 * * *", at(2026, 11, 27, 1, 59, 59), at(2026, 11, 26, 2, 0)),
        ("0 2 * * *", at(2027, 1, 1, 0, 0), at(2026, 12, 31, 2, 0)),
        ("*/15 * * * *", at(2026, 11, 27, 10, 44), at(2026, 11, 27, 10, 30)),
        ("*/15 * * * *", at(2026, 11, 27, 10, 45), at(2026, 11, 27, 10, 45)),
        ("30 9,17 * * *", at(2026, 11, 27, 12, 0), at(2026, 11, 27, 9, 30)),
        ("30 9,17 * * *", at(2026, 11, 27, 9, 29), at(2026, 11, 26, 17, 30)),
        ("0 0 1 * *", at(2026, 3, 15, 8, 0), at(2026, 3, 1, 0, 0)),
        ("0 12 * * 1", at(2026, 11, 27, 8, 0), at(2026, 11, 23, 12, 0)),  # Friday -> Monday
        ("0 0 29 2 *", at(2026, 11, 27, 8, 0), at(2024, 2, 29, 0, 0)),
        # Day of month AND day of week, as Celery's crontab: Friday the 13th.
        ("0 0 13 * 5", at(2026, 12, 1, 0, 0), at(2026, 11, 13, 0, 0)),
    ],
)
def test_last_slot_is_the_latest_firing_at_or_before_now(expression, now, slot):
    assert Cron.parse(expression).last_slot(now) == slot


def test_last_slot_reads_naive_times_as_utc():
    assert Cron.parse("0 2 * * *").last_slot(datetime(2026, 11, 27, 3)) == at(2026, 11, 27, 2)


@pytest.mark.parametrize(
    "expression",
    ["0 2 * * *", "*/15 9-17 * * 1-5", "30 3 1,15 * *", "0 0 * jan,jul sun", "0 0 * * 7"],
)
def test_celery_crontab_fires_on_the_same_values(expression):
    cron = Cron.parse(expression)
    schedule = crontab(**cron.celery_fields())
    assert schedule.minute == cron.minutes
    assert schedule.hour == cron.hours
    assert schedule.day_of_month == cron.days
    assert schedule.month_of_year == cron.months
    assert schedule.day_of_week == cron.weekdays


@pytest.mark.parametrize(
    ("template", "name"),
    [
        ("nightly-{date}", "nightly-2026-11-27"),
        ("{dataset}-{datetime}", "flowers-20261127-0200"),
        ("weekly", "weekly"),
    ],
)
def test_render_name(template, name):
    assert render_name(template, at(2026, 11, 27, 2, 0), "jane/flowers") == name


# -- the config file ---------------------------------------------------------------------------


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None):
    path = tmp_path / "relay.toml"
    path.write_text(SOURCES + text)
    return load_releases(path, {"CHAT_SECRET": SECRET, **(environ or {})}, resolve=resolve)


def test_schedules_and_targets_load(tmp_path):
    schedules, targets = load(
        tmp_path,
        """
[[schedules]]
dataset = "jane/flowers"
cron = "0 2 * * *"
name = "nightly-{date}"
description = "Nightly {dataset}"

[[notify]]
name = "chat"
url_env = "CHAT_URL"
secret_env = ["CHAT_SECRET"]
""",
        {"CHAT_URL": "https://hooks.example.com/services/T0/B0/token123"},
    )
    (schedule,) = schedules
    assert (schedule.index, schedule.dataset, schedule.cron.expression) == (
        0,
        "jane/flowers",
        "0 2 * * *",
    )
    assert schedule.name_for(at(2026, 11, 27, 2)) == "nightly-2026-11-27"
    assert schedule.description_for(at(2026, 11, 27, 2)) == "Nightly flowers"
    (target,) = targets
    assert target.url.endswith("token123")
    assert target.secrets == (SECRET,)
    assert "token123" not in repr(target)
    assert SECRET not in repr(target)


def test_nothing_configured_is_fine(tmp_path):
    assert load(tmp_path, "") == ((), ())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[[schedules]]\ndataset = "jane/flowers"\ncron = "0 25 * * *"\nname = "n"\n',
            "schedule #1 (jane/flowers): cron: hour: 25 is outside 0-23",
        ),
        (
            '[[schedules]]\ndataset = "flowers"\ncron = "0 2 * * *"\nname = "n"\n',
            "schedule #1 (flowers): dataset: must be 'owner/name'",
        ),
        (
            '[[schedules]]\ndataset = "jane/flowers"\ncron = "0 2 * * *"\nname = "n-{day}"\n',
            "schedule #1 (jane/flowers): name: unknown field {day}",
        ),
        (
            '[[schedules]]\ndataset = "jane/flowers"\ncron = "0 2 * * *"\nname = "a/{date}"\n',
            "name: renders to 'a/2026-11-27', not a valid release name",
        ),
        (
            '[[schedules]]\ndataset = "jane/flowers"\ncron = "0 2 * * *"\nname = "{date:%Y}"\n',
            "takes no format spec",
        ),
        (
            '[[schedules]]\ndataset = "jane/flowers"\ncron = "0 2 * * *"\n',
            "schedule #1 (jane/flowers): name: Missing data for required field.",
        ),
        (
            '[[schedules]]\ndataset = "jane/flowers"\ncron = "0 2 * * *"\nname = "n"\nat = 1\n',
            "schedule #1 (jane/flowers): at: Unknown field.",
        ),
        (
            '[[notify]]\nname = "chat"\nurl = "http://hooks.example.com/x"\n'
            'secret_env = ["CHAT_SECRET"]\n',
            "notify 'chat': url: must be an https URL, not http scheme (set allow_http = true",
        ),
        (
            '[[notify]]\nname = "chat"\nurl = "https://intranet.example.com/x"\n'
            'secret_env = ["CHAT_SECRET"]\n',
            "notify 'chat': url: host intranet.example.com is a private",
        ),
        (
            '[[notify]]\nname = "chat"\nurl = "https://127.0.0.1:9000/x"\n'
            'secret_env = ["CHAT_SECRET"]\nallow_http = true\n',
            "set allow_private = true to allow",
        ),
        (
            '[[notify]]\nname = "chat"\nurl = "https://hooks.example.com/x"\n'
            'secret_env = ["NOT_SET"]\n',
            "notify 'chat': secret_env: environment variable NOT_SET is not set",
        ),
        (
            '[[notify]]\nname = "chat"\nurl = "https://hooks.example.com/x"\n'
            'secret_env = ["PLAIN"]\n',
            "notify 'chat': secret_env: PLAIN must hold 'whsec_' followed by base64",
        ),
        (
            '[[notify]]\nname = "chat"\nurl = "https://hooks.example.com/x"\n'
            'secret_env = ["GARBLED"]\n',
            "GARBLED must hold 'whsec_' followed by base64",
        ),
        (
            '[[notify]]\nname = "chat"\nurl = "https://hooks.example.com/x"\n',
            "notify 'chat': secret_env: Missing data for required field.",
        ),
        (
            '[[notify]]\nname = "chat"\nsecret_env = ["CHAT_SECRET"]\n',
            "notify 'chat': url: set exactly one of url and url_env",
        ),
        (
            '[[notify]]\nname = "chat"\nurl_env = "NO_URL"\nsecret_env = ["CHAT_SECRET"]\n',
            "notify 'chat': url_env: environment variable NO_URL is not set",
        ),
        (
            '[[notify]]\nname = "chat"\nurl = "https://hooks.example.com/a"\n'
            'secret_env = ["CHAT_SECRET"]\n'
            '[[notify]]\nname = "chat"\nurl = "https://hooks.example.com/b"\n'
            'secret_env = ["CHAT_SECRET"]\n',
            "notify 'chat': name: used twice",
        ),
        (
            '[[notify]]\nname = "Chat Room"\nurl = "https://hooks.example.com/a"\n'
            'secret_env = ["CHAT_SECRET"]\n',
            "notify 'Chat Room': name: use a-z, 0-9, _ and -",
        ),
    ],
)
def test_problems_name_the_table_and_field(tmp_path, text, problem):
    environ = {"PLAIN": "not-a-whsec-secret", "GARBLED": "whsec_***"}
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, environ)
    assert any(problem in line for line in info.value.problems), info.value.problems
    assert "not-a-whsec-secret" not in str(info.value)


def test_explicit_allowances_let_a_local_receiver_in(tmp_path):
    _, (target,) = load(
        tmp_path,
        '[[notify]]\nname = "local"\nurl = "http://127.0.0.1:9000/x"\n'
        'secret_env = ["CHAT_SECRET"]\nallow_http = true\nallow_private = true\n',
    )
    assert (target.allow_http, target.allow_private) == (True, True)


class TestSettings:
    def test_release_settings_come_from_the_file_and_env(self, tmp_path):
        path = tmp_path / "relay.toml"
        path.write_text(
            SOURCES
            + '[[schedules]]\ndataset = "jane/flowers"\ncron = "0 2 * * *"\nname = "n-{date}"\n'
        )
        settings = Settings.from_env(
            {
                "RELAY_CONFIG": str(path),
                "RELAY_RELEASE_POLL_DEADLINE_SECONDS": "600",
                "RELAY_RELEASE_SWEEP_SECONDS": "30",
            }
        )
        assert [s.dataset for s in settings.schedules] == ["jane/flowers"]
        assert settings.notify == ()
        assert settings.release_poll_deadline_seconds == 600.0
        assert settings.release_sweep_seconds == 30.0

    def test_defaults(self, tmp_path):
        path = tmp_path / "relay.toml"
        path.write_text(SOURCES)
        settings = Settings.from_env({"RELAY_CONFIG": str(path)})
        assert settings.release_poll_deadline_seconds == 3600.0
        assert settings.release_sweep_seconds == 60.0

    def test_bad_values_are_named(self, tmp_path):
        path = tmp_path / "relay.toml"
        path.write_text(SOURCES)
        env = {"RELAY_CONFIG": str(path), "RELAY_RELEASE_POLL_DEADLINE_SECONDS": "soon"}
        with pytest.raises(ConfigError, match="RELAY_RELEASE_POLL_DEADLINE_SECONDS"):
            Settings.from_env(env)
