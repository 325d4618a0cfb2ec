"""open_log routes by URL scheme; the embedded path never loads librdkafka."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.broker import TansuBroker
from transport import (
    DeliveryFailed,
    EventLog,
    LogUnavailable,
    TransportError,
    UnsupportedLogURL,
    open_log,
)
from transport.kafka import KafkaLog, bootstrap_of
from transport.sqlite import SqliteLog

REPO = Path(__file__).resolve().parents[2]


def test_sqlite_url_opens_the_embedded_log(tmp_path: Path) -> None:
    with open_log(f"sqlite:///{tmp_path / 'a' / 'log.db'}") as log:
        assert isinstance(log, SqliteLog)
        assert isinstance(log, EventLog)
        assert log.url.endswith("log.db")
    assert (tmp_path / "a" / "log.db").exists()


@pytest.mark.kafka
def test_kafka_url_opens_the_kafka_log(tansu: TansuBroker) -> None:
    with open_log(tansu.url) as log:
        assert isinstance(log, KafkaLog)
        assert isinstance(log, EventLog)
        assert log.list_topics("no-such-prefix.") == []


@pytest.mark.parametrize(
    "url",
    [
        "postgres://localhost/db",
        "redis://x",
        "",
        "just-a-path.db",
        "sqlite://",
        "sqlite:///:memory:",
        "kafka://",
        "kafka://hostwithoutport",
        "kafka://h:notaport",
    ],
)
def test_unsupported_urls(url: str) -> None:
    with pytest.raises(UnsupportedLogURL) as info:
        open_log(url)
    assert info.value.code == "unsupported_log_url"
    assert isinstance(info.value, TransportError)


def test_bootstrap_of_lists_servers() -> None:
    assert bootstrap_of("kafka://a:1,b:2") == "a:1,b:2"
    assert bootstrap_of("kafka://a:1/") == "a:1"


def test_unknown_option_is_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        open_log(f"sqlite:///{tmp_path / 'log.db'}", no_such_option=1)


def test_error_codes() -> None:
    assert TransportError("x").code == "transport_error"
    assert UnsupportedLogURL("x").code == "unsupported_log_url"
    assert LogUnavailable("x").code == "log_unavailable"
    failed = DeliveryFailed("x", failed=3)
    assert (failed.code, failed.failed) == ("delivery_failed", 3)
    assert TransportError("x", code="custom").code == "custom"


def test_embedded_path_never_imports_confluent_kafka(tmp_path: Path) -> None:
    script = f"""
import sys
import transport
with transport.open_log("sqlite:///{tmp_path / "log.db"}") as log:
    log.append("t", b"x")
    log.flush()
    c = log.consumer("g", ["t"])
    assert [r.value for r in c.poll(timeout=0)] == [b"x"]
    c.close()
loaded = sorted(m for m in sys.modules if m.startswith("confluent_kafka"))
assert not loaded, loaded
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
