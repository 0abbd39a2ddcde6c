"""Settings.from_env and the sources file: typed values, every problem named at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, Settings
from config.settings import EXAMPLE_CONFIG
from config.sources import SOURCE_TYPES

EXAMPLE_SECRETS = {
    "RELAY_S3_TOKEN": "a",
    "RELAY_MINIO_TOKEN": "b",
    "RELAY_GCS_TOKEN": "c",
    "RELAY_AZURE_TOKEN": "d",
    "RELAY_PREDICTIONS_SECRET": "whsec_" + "QUJDREVGR0hJSktMTU5PUA==",
    "RELAY_REPLICATE_SECRET": "whsec_" + "UVJTVFVWV1hZWmFiY2RlZg==",
    "RELAY_SEGMENTS_WEBHOOK_SECRET": "whsec_" + "Z2hpamtsbW5vcHFyc3R1dg==",
}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return str(path)


class TestFromEnv:
    def test_defaults_use_the_example_config(self):
        settings = Settings.from_env(EXAMPLE_SECRETS)
        assert settings.config_path == str(EXAMPLE_CONFIG)
        assert settings.port == 8000
        assert settings.redis_url is None
        assert settings.api_url == "https://api.segments.ai"
        # One source per sender type, named after its type.
        assert {name: s.type for name, s in settings.sources.items()} == {
            t: t for t in SOURCE_TYPES
        }

    def test_values_are_typed(self):
        env = {
            **EXAMPLE_SECRETS,
            "RELAY_PORT": "9001",
            "RELAY_REDIS_URL": "redis://localhost:6379/2",
            "RELAY_API_RATE": "2.5",
            "RELAY_SEGMENTS_API_URL": "http://127.0.0.1:8700",
        }
        settings = Settings.from_env(env)
        assert settings.port == 9001
        assert settings.api_rate == 2.5
        assert settings.broker == "redis://localhost:6379/2"
        assert settings.api_url == "http://127.0.0.1:8700"

    def test_every_bad_variable_is_named_together(self):
        env = {
            **EXAMPLE_SECRETS,
            "RELAY_PORT": "eighty",
            "RELAY_REDIS_URL": "http://nope",
            "RELAY_LOG_LEVEL": "LOUD",
        }
        with pytest.raises(ConfigError) as info:
            Settings.from_env(env)
        text = str(info.value)
        for name in ("RELAY_PORT", "RELAY_REDIS_URL", "RELAY_LOG_LEVEL"):
            assert name in text

    def test_secrets_stay_out_of_repr(self):
        env = {
            **EXAMPLE_SECRETS,
            "RELAY_SEGMENTS_API_KEY": "sk-very-secret",
            "RELAY_OPS_TOKEN": "ops-secret",
        }
        settings = Settings.from_env(env)
        text = repr(settings)
        for secret in ("sk-very-secret", "ops-secret", *EXAMPLE_SECRETS.values()):
            assert f"'{secret}'" not in text
        assert settings.segments_api_key == "sk-very-secret"

    def test_missing_secret_variable_is_named(self, tmp_path):
        own = write(tmp_path, EXAMPLE_CONFIG.read_text())
        env = {k: v for k, v in EXAMPLE_SECRETS.items() if k != "RELAY_MINIO_TOKEN"}
        with pytest.raises(ConfigError, match="source 'minio': secret_env: .*RELAY_MINIO_TOKEN"):
            Settings.from_env({**env, "RELAY_CONFIG": own})

    def test_the_example_config_runs_on_demo_secrets_with_a_warning(self):
        settings = Settings.from_env({"RELAY_MINIO_TOKEN": "mine"})
        assert settings.sources["minio"].secrets == ("mine",)
        assert settings.sources["s3"].secrets == ("demo-s3-token",)
        assert any("demo secrets" in note for note in settings.warnings())

    def test_bad_signing_secret_is_refused(self, tmp_path):
        own = write(tmp_path, EXAMPLE_CONFIG.read_text())
        env = {**EXAMPLE_SECRETS, "RELAY_PREDICTIONS_SECRET": "not-a-whsec", "RELAY_CONFIG": own}
        with pytest.raises(ConfigError, match="RELAY_PREDICTIONS_SECRET is not a signing secret"):
            Settings.from_env(env)


class TestSourcesFile:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("[[sources]]\nname='x'\ntype='ftp'\n", "source 'x': type: Must be one of"),
            ("[[sources]]\ntype='s3'\n", "source #1: name: Missing data"),
            ("[[sources]]\nname='Bad Name'\ntype='s3'\n", "source 'Bad Name': name: use a-z"),
            (
                "[[sources]]\nname='m'\ntype='minio'\n",
                "source 'm': secret_env: a minio source needs",
            ),
            (
                "[[sources]]\nname='s'\ntype='s3'\n[[sources.routes]]\ndataset='nodash'\n",
                "source 's': routes[0].dataset: must be 'owner/name'",
            ),
            (
                "[[sources]]\nname='s'\ntype='s3'\n[[sources.routes]]\ndataset='a/b'\nsample_name='{nope}'\n",
                "source 's': routes[0].sample_name: unknown field {nope}",
            ),
            (
                "[[sources]]\nname='s'\ntype='s3'\ncolour='red'\n",
                "source 's': colour: Unknown field",
            ),
            (
                "[[sources]]\nname='s'\ntype='s3'\n[[sources]]\nname='s'\ntype='s3'\n",
                "source 's': name: used twice",
            ),
            ("sources = 'x'\n", "sources: Not a valid list"),
            ("not toml at all [", "not valid TOML"),
        ],
    )
    def test_bad_file_names_file_source_and_field(self, tmp_path, text, expected):
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as info:
            Settings.from_env({"RELAY_CONFIG": path})
        assert path in str(info.value)
        assert expected in str(info.value)

    def test_missing_file(self, tmp_path):
        with pytest.raises(ConfigError, match="cannot read"):
            Settings.from_env({"RELAY_CONFIG": str(tmp_path / "absent.toml")})

    def test_routes_and_secrets_are_loaded(self, tmp_path):
        path = write(
            tmp_path,
            """
[[sources]]
name = "bucket"
type = "azure"
secret_env = ["TOKEN_A", "TOKEN_B"]

[[sources.routes]]
dataset = "jane/flowers"
prefix = "in/"
suffixes = [".png"]
sample_name = "{stem}"
""",
        )
        settings = Settings.from_env(
            {"RELAY_CONFIG": path, "TOKEN_A": "tok-1st", "TOKEN_B": "tok-2nd"}
        )
        source = settings.sources["bucket"]
        assert source.secrets == ("tok-1st", "tok-2nd")
        assert "tok-1st" not in repr(source)
        (route,) = source.routes
        assert (route.dataset, route.prefix, route.suffixes, route.sample_name) == (
            "jane/flowers",
            "in/",
            (".png",),
            "{stem}",
        )
