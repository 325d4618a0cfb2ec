"""The CLI's shared start-up: bad settings and bad log options stop a command, named, as USAGE."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from tiptrust.cli.common import Exit, HomeOpt, LogOpt, home_of, start_up

SECRET = "hunter2-do-not-print"


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def show(log: LogOpt = None, home: HomeOpt = None) -> None:
        h = home_of(home)
        print(h.log_url(log))

    return app


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("TIPTRUST_LOG", "TIPTRUST_KAFKA_OPTIONS", "TIPTRUST_LOGGING_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_a_good_kafka_url_gets_the_environments_options(runner: CliRunner) -> None:
    done = runner.invoke(
        _app(),
        ["--log", "kafka://k:1", "--home", "h"],
        env={"TIPTRUST_KAFKA_OPTIONS": "client.id=agency"},
    )
    assert done.exit_code == 0, done.output
    assert done.output.strip() == "kafka://k:1?client.id=agency"


def test_a_typo_in_the_log_url_stops_the_command_naming_it(runner: CliRunner) -> None:
    url = f"kafka://k:1?sesion.timeout.ms=2000&sasl.password={SECRET}&security.protocol=x"
    done = runner.invoke(_app(), ["--log", url])
    assert done.exit_code == int(Exit.USAGE)
    assert "sesion.timeout.ms" in done.output and "session.timeout.ms?" in done.output
    assert "security.protocol: invalid value" in done.output
    assert SECRET not in done.output


def test_a_bad_option_in_the_environment_stops_a_kafka_command(runner: CliRunner) -> None:
    done = runner.invoke(
        _app(), ["--log", "kafka://k:1"], env={"TIPTRUST_KAFKA_OPTIONS": "group.id=x"}
    )
    assert done.exit_code == int(Exit.USAGE)
    assert "group.id: fixed by the transport" in done.output


def test_bad_settings_stop_the_command_at_home_of(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = runner.invoke(_app(), [], env={"TIPTRUST_LOGGING_FORMAT": "xml"})
    assert done.exit_code == int(Exit.USAGE)
    assert "TIPTRUST_LOGGING_FORMAT: expected one of text, json" in done.output
    monkeypatch.setenv("TIPTRUST_LOGGING_LEVEL", "loud")
    with pytest.raises(typer.Exit) as info:
        home_of(None)
    assert info.value.exit_code == int(Exit.USAGE)


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield root
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def test_start_up_reports_every_bad_setting_and_exits_usage(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        start_up({"TIPTRUST_LOGGING_LEVEL": "loud", "TIPTRUST_STORE": f"mysql://{SECRET}"})
    assert info.value.code == int(Exit.USAGE)
    err = capsys.readouterr().err
    assert "TIPTRUST_STORE" in err and "TIPTRUST_LOGGING_LEVEL" in err
    assert SECRET not in err


def test_start_up_configures_diagnostics(root_logger: logging.Logger) -> None:
    settings = start_up({"TIPTRUST_LOGGING_LEVEL": "info", "TIPTRUST_LOGGING_FORMAT": "json"})
    assert settings.logging_format == "json"
    assert root_logger.level == logging.INFO
    assert any(type(h).__name__ == "_Handler" for h in root_logger.handlers)
