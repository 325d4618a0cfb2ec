"""Typed settings: declared once, read from the environment at the edge, every problem at once."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import pytest

from tiptrust.home import SETTINGS, Home, Settings, SettingsError, checked_log_url
from transport.kafka_config import parse_url

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("schemas", "transport", "producers", "trust", "consumers")
SECRET = "hunter2-do-not-print"


def test_defaults_with_an_empty_environment() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.home, s.log, s.store, dict(s.kafka_options)) == (Path(".tiptrust"), "", "", {})
    assert (s.logging_level, s.logging_format) == ("warning", "text")


def test_every_setting_is_read_from_its_variable() -> None:
    s = Settings.from_env(
        {
            "TIPTRUST_HOME": "/srv/tip",
            "TIPTRUST_LOG": "kafka://k1:9092,k2:9092",
            "TIPTRUST_STORE": "postgresql+psycopg://trust@db/trust",
            "TIPTRUST_KAFKA_OPTIONS": "session.timeout.ms=45000 & client.id=trust",
            "TIPTRUST_LOGGING_LEVEL": "INFO",
            "TIPTRUST_LOGGING_FORMAT": "json",
        }
    )
    assert s.home == Path("/srv/tip")
    assert s.log == "kafka://k1:9092,k2:9092"
    assert s.store == "postgresql+psycopg://trust@db/trust"
    assert dict(s.kafka_options) == {"session.timeout.ms": "45000", "client.id": "trust"}
    assert (s.logging_level, s.logging_format) == ("info", "json")


def test_every_bad_value_is_reported_at_once_by_name_never_by_value() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(
            {
                "TIPTRUST_LOG": f"redis://{SECRET}",
                "TIPTRUST_STORE": f"mysql://{SECRET}",
                "TIPTRUST_KAFKA_OPTIONS": f"sesion.timeout.ms=1&sasl.password={SECRET}&group.id=x",
                "TIPTRUST_LOGGING_LEVEL": SECRET,
                "TIPTRUST_LOGGING_FORMAT": "xml",
            }
        )
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "TIPTRUST_LOG",
        "TIPTRUST_STORE",
        "TIPTRUST_KAFKA_OPTIONS",
        "TIPTRUST_LOGGING_LEVEL",
        "TIPTRUST_LOGGING_FORMAT",
    ]
    kafka = problems[2]
    assert "sesion.timeout.ms: unknown" in kafka and "group.id: fixed" in kafka
    assert SECRET not in str(info.value)


def test_a_bad_option_in_the_log_url_is_refused() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"TIPTRUST_LOG": "kafka://k:1?fetch.wait.max.ms=soon"})
    assert info.value.problems == ("TIPTRUST_LOG: fetch.wait.max.ms: invalid value",)


def test_settings_are_declared_once_with_type_env_default_and_doc() -> None:
    assert [s.name for s in SETTINGS] == [f.name for f in fields(Settings)]
    envs = [s.env for s in SETTINGS]
    assert len(set(envs)) == len(envs)
    assert all(e.startswith("TIPTRUST_") for e in envs)
    assert all(s.doc and s.kind and s.default for s in SETTINGS)
    assert {s.name: s.default for s in SETTINGS}["home"] == ".tiptrust"


def test_log_url_precedence_and_kafka_options(tmp_path: Path) -> None:
    bare = Settings()
    assert bare.log_url(tmp_path) == f"sqlite:///{tmp_path / 'log.db'}"
    assert bare.log_url(tmp_path, "kafka://a:1") == "kafka://a:1"
    s = Settings(log="kafka://env:1", kafka_options={"session.timeout.ms": "45000"})
    assert s.log_url(tmp_path) == "kafka://env:1?session.timeout.ms=45000"
    given = s.log_url(tmp_path, "kafka://cli:1?session.timeout.ms=6000&client.id=x")
    assert parse_url(given).bootstrap == "cli:1"
    assert parse_url(given).options == {"session.timeout.ms": "6000", "client.id": "x"}
    # SQLite takes no client options
    assert Settings(kafka_options={"client.id": "x"}).log_url(tmp_path, "sqlite:///a.db") == (
        "sqlite:///a.db"
    )


def test_home_reads_its_settings_from_the_environment(tmp_path: Path) -> None:
    env = {"TIPTRUST_HOME": str(tmp_path / "h"), "TIPTRUST_KAFKA_OPTIONS": "client.id=agency"}
    home = Home.resolve(None, env)
    assert home.root == tmp_path / "h"
    assert home.log_url("kafka://k:1") == "kafka://k:1?client.id=agency"
    assert home.store_url() == f"sqlite:///{tmp_path / 'h' / 'trust' / 'store.db'}"
    assert Home.resolve(str(tmp_path / "given"), env).root == tmp_path / "given"
    with pytest.raises(SettingsError):
        Home.resolve(None, {"TIPTRUST_LOGGING_FORMAT": "xml"})


def test_home_without_settings_reads_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIPTRUST_KAFKA_OPTIONS", "client.id=from-env")
    monkeypatch.delenv("TIPTRUST_LOG", raising=False)
    home = Home(tmp_path)
    assert home.log_url() == f"sqlite:///{tmp_path / 'log.db'}"
    assert home.log_url("kafka://k:1") == "kafka://k:1?client.id=from-env"


def test_checked_log_url_checks_the_url_and_the_options() -> None:
    env = {"TIPTRUST_KAFKA_OPTIONS": "client.id=agency"}
    assert checked_log_url("kafka://k:1", env) == "kafka://k:1?client.id=agency"
    assert checked_log_url("sqlite:///x.db", env) == "sqlite:///x.db"
    with pytest.raises(SettingsError) as info:
        checked_log_url("kafka://k:1?linger.ms=soon", env)
    assert info.value.problems == ("linger.ms: invalid value",)
    # bad options are refused even while the log is SQLite: never silently ignored
    for bad in ("nonsense", "acks=1"):
        with pytest.raises(SettingsError) as info:
            checked_log_url("sqlite:///x.db", {"TIPTRUST_KAFKA_OPTIONS": bad})
        assert info.value.problems[0].startswith("TIPTRUST_KAFKA_OPTIONS:")


def test_library_code_never_reads_the_environment() -> None:
    """Only tiptrust/ (and the broker launcher) reads os.environ; libraries take objects."""
    readers = []
    for package in LIBRARIES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                    readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert readers == []
