"""Kafka client options: production-safe defaults, options in the URL, strict checking.

Options travel as the ``kafka://`` URL's query; each reaches the clients that use it; an
unknown name, an invalid value or an option the transport fixes is refused when the log is
opened, every problem at once, each by name and never with its value.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from hypothesis import given
from hypothesis import strategies as st

from infra.broker import TANSU_CLIENT_OVERRIDES, TansuBroker
from transport import (
    InvalidLogOptions,
    UnsupportedLogURL,
    check_log_url,
    display_url,
    open_log,
    with_log_options,
)
from transport.kafka import KafkaLog, bootstrap_of, check_url
from transport.kafka_config import (
    CONSUMER_DEFAULTS,
    CONSUMER_ONLY,
    FIXED,
    PRODUCER_ONLY,
    format_options,
    parse_options,
    parse_url,
    scope_of,
)

REPO = Path(__file__).resolve().parents[2]
SECRET = "hunter2-do-not-print"

# --- the URL's query ---------------------------------------------------------------------


def test_options_come_from_the_url_query() -> None:
    parsed = parse_url("kafka://a:1,b:2?session.timeout.ms=45000&client.id=x%26y")
    assert parsed.bootstrap == "a:1,b:2"
    assert parsed.options == {"session.timeout.ms": "45000", "client.id": "x&y"}
    assert bootstrap_of("kafka://a:1?linger.ms=1") == "a:1"
    assert parse_url("kafka://a:1/").options == {}


option_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z0-9_]{1,8}){0,3}", fullmatch=True)
option_values = st.text(min_size=1, max_size=30).filter(lambda v: v.strip() == v and v != "")


@given(st.dictionaries(option_names, option_values, max_size=6))
def test_format_then_parse_is_the_identity(options: dict[str, str]) -> None:
    parsed, problems = parse_options(format_options(options))
    assert problems == []
    assert parsed == options


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("novalue", "option 1: expected name=value"),
        ("a.b=", "a.b: no value"),
        ("a.b=1&a.b=2", "a.b: given twice"),
        ("Bad.Name=1", "not a Kafka client option name"),
    ],
)
def test_query_syntax_problems(query: str, expected: str) -> None:
    with pytest.raises(InvalidLogOptions) as info:
        parse_url(f"kafka://h:1?{query}")
    assert any(expected in p for p in info.value.problems)
    assert info.value.code == "invalid_log_option"
    assert isinstance(info.value, UnsupportedLogURL | ValueError)


@pytest.mark.parametrize("url", ["kafka://h:1/some/path", "kafka://?a.b=1", "kafka://h?x.y=1"])
def test_malformed_kafka_urls(url: str) -> None:
    with pytest.raises(UnsupportedLogURL):
        check_log_url(url)


def test_with_log_options_adds_and_the_url_wins() -> None:
    url = "kafka://h:1?session.timeout.ms=10000"
    merged = with_log_options(url, {"session.timeout.ms": "45000", "client.id": "trust"})
    assert parse_url(merged).options == {"session.timeout.ms": "10000", "client.id": "trust"}
    assert with_log_options(url, {}) is url
    assert with_log_options(url, {"session.timeout.ms": "1"}) is url
    assert with_log_options("sqlite:///x.db", {"client.id": "x"}) == "sqlite:///x.db"


def test_display_url_hides_secrets() -> None:
    url = f"kafka://h:1?sasl.username=trust&sasl.password={SECRET}&ssl.key.password={SECRET}"
    shown = display_url(url)
    assert SECRET not in shown
    assert "sasl.username=trust" in shown and "sasl.password=***" in shown
    plain = "kafka://h:1?client.id=x"
    assert display_url(plain) == plain
    assert display_url("sqlite:///x.db") == "sqlite:///x.db"


# --- defaults and routing --------------------------------------------------------------------


def test_defaults_are_what_apache_kafka_accepts() -> None:
    # librdkafka's own timings apply: session 45 s (the broker's floor is 6 s by default),
    # heartbeat 3 s, fetch wait 0.5 s; nothing of Tansu's is a default any more.
    consumer = check_url("kafka://h:1").consumer
    for name in ("session.timeout.ms", "heartbeat.interval.ms", "fetch.wait.max.ms"):
        assert name not in CONSUMER_DEFAULTS and name not in consumer
    assert {"log.connection.close"}.isdisjoint(check_url("kafka://h:1").admin)
    # and the port's semantics are fixed, whatever the options
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.partition.eof"] is True
    assert consumer["auto.offset.reset"] == "earliest"


def test_each_option_reaches_the_clients_that_use_it() -> None:
    configs = check_url(
        "kafka://h:1?session.timeout.ms=45000&linger.ms=20&client.id=trust&socket.timeout.ms=9000"
    )
    assert configs.consumer["session.timeout.ms"] == "45000"
    assert "session.timeout.ms" not in configs.producer
    assert "session.timeout.ms" not in configs.admin
    assert configs.producer["linger.ms"] == "20"
    assert "linger.ms" not in configs.consumer and "linger.ms" not in configs.admin
    for conf in (configs.producer, configs.consumer, configs.admin):
        assert conf["client.id"] == "trust" and conf["socket.timeout.ms"] == "9000"
        assert conf["bootstrap.servers"] == "h:1"


def test_code_given_client_settings_win_over_the_url() -> None:
    configs = check_url("kafka://h:1?linger.ms=20", producer={"linger.ms": 1})
    assert configs.producer["linger.ms"] == 1


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# librdkafka's defaults, as sample values; callbacks cannot be given as text.
_SAMPLES = {
    "auto.offset.reset": "earliest",
    "check.crcs": "false",
    "enable.auto.commit": "false",
    "auto.commit.enable": "false",
    "enable.auto.offset.store": "true",
    "enable.partition.eof": "false",
    "group.id": "g",
    "group.instance.id": "i",
    "group.protocol": "classic",
    "group.protocol.type": "consumer",
    "group.remote.assignor": "uniform",
    "isolation.level": "read_committed",
    "offset.store.method": "broker",
    "offset.store.path": ".",
    "offset.store.sync.interval.ms": "-1",
    "partition.assignment.strategy": "range,roundrobin",
    "share.acknowledgement.mode": "implicit",
    "acks": "all",
    "request.required.acks": "all",
    "compression.codec": "none",
    "compression.type": "none",
    "compression.level": "-1",
    "delivery.report.only.error": "false",
    "enable.gapless.guarantee": "false",
    "enable.idempotence": "false",
    "partitioner": "consistent_random",
    "produce.offset.report": "false",
    "queuing.strategy": "fifo",
}


@pytest.mark.parametrize(
    ("names", "client", "kind"),
    [(CONSUMER_ONLY, Producer, "consumer"), (PRODUCER_ONLY, Consumer, "producer")],
)
def test_the_scope_tables_match_the_bundled_librdkafka(
    names: frozenset[str], client: type[Producer] | type[Consumer], kind: str
) -> None:
    """Each name the table calls consumer-only (producer-only) is one librdkafka ignores, with a
    warning, in a producer (consumer). Names newer than the bundled librdkafka are let pass."""
    mismatched, unknown = [], []
    for name in sorted(names):
        if name.endswith("_cb") or name == "msg_order_cmp":
            continue
        capture = _Capture()
        logger = logging.Logger(f"scope-{name}")
        logger.addHandler(capture)
        conf = {name: _SAMPLES.get(name, "1000"), "logger": logger}
        if client is Consumer:
            conf["group.id"] = "scope-check"
        try:
            handle = client(conf)
        except KafkaException as exc:
            if "No such configuration property" in str(exc):
                unknown.append(name)
                continue
            raise
        handle.poll(0)
        if isinstance(handle, Consumer):
            handle.close()
        # (an alias is named by its target: linger.ms warns as queue.buffering.max.ms)
        if not any(f" is a {kind} property" in m for m in capture.messages):
            mismatched.append(name)
    assert mismatched == [], f"not {kind}-only in this librdkafka: {mismatched}"
    assert len(unknown) <= 3, f"the table names many properties librdkafka lacks: {unknown}"


def test_an_option_the_python_client_reads_as_a_bool() -> None:
    configs = check_url("kafka://h:1?delivery.report.only.error=true")
    assert configs.producer["delivery.report.only.error"] is True


def test_global_options_go_everywhere() -> None:
    assert scope_of("security.protocol") == "global"
    assert scope_of("session.timeout.ms") == "consumer"
    assert scope_of("linger.ms") == "producer"


# --- strict checking at open time ------------------------------------------------------------


def test_every_problem_is_reported_at_once_by_name() -> None:
    url = (
        "kafka://127.0.0.1:9?sesion.timeout.ms=2000&linger.ms=soon&group.id=mine"
        "&enable.auto.commit=true&fetch.wait.max.ms=20"
    )
    with pytest.raises(InvalidLogOptions) as info:
        open_log(url)
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert any(
        p.startswith("sesion.timeout.ms: unknown") and "session.timeout.ms" in p for p in problems
    )
    assert "linger.ms: invalid value" in problems
    assert any(p.startswith("group.id: fixed by the transport") for p in problems)
    assert any(p.startswith("enable.auto.commit: fixed by the transport") for p in problems)
    assert "soon" not in str(info.value)


def test_values_never_appear_in_problems() -> None:
    bad = [
        f"kafka://h:1?security.protocol=ssl&ssl.ca.location=/nonexistent/{SECRET}",
        f"kafka://h:1?sasl.password={SECRET}&security.protocol={SECRET}",
        f"kafka://h:1?no.such.option={SECRET}",
    ]
    for url in bad:
        with pytest.raises(InvalidLogOptions) as info:
            check_log_url(url)
        assert SECRET not in str(info.value) and SECRET not in repr(info.value.problems)


def test_combinations_are_checked_per_client() -> None:
    with pytest.raises(InvalidLogOptions) as info:
        check_log_url("kafka://h:1?acks=1")  # the producer is idempotent: acks must be all
    assert info.value.problems == (
        "producer client: `acks` must be set to `all` when `enable.idempotence` is true",
    )
    # valid only together: SASL over SSL with a mechanism librdkafka has
    check_log_url(
        "kafka://h:1?security.protocol=sasl_ssl&sasl.mechanisms=PLAIN"
        f"&sasl.username=trust&sasl.password={SECRET}"
    )


@pytest.mark.parametrize("name", sorted(FIXED))
def test_fixed_options_are_refused_with_the_reason(name: str) -> None:
    with pytest.raises(InvalidLogOptions) as info:
        check_log_url(f"kafka://h:1?{name}=x")
    assert info.value.problems == (f"{name}: fixed by the transport ({FIXED[name]})",)


def test_fixed_options_given_in_code_are_refused_too() -> None:
    with pytest.raises(InvalidLogOptions) as info:
        KafkaLog("kafka://h:1", consumer={"enable.auto.commit": True})
    assert info.value.problems[0].startswith("consumer enable.auto.commit: fixed")


def test_cooperative_assignor_is_refused() -> None:
    with pytest.raises(InvalidLogOptions) as info:
        check_log_url("kafka://h:1?partition.assignment.strategy=cooperative-sticky")
    assert "eager" in info.value.problems[0]
    check_log_url("kafka://h:1?partition.assignment.strategy=roundrobin")


def test_the_sqlite_check_touches_nothing(tmp_path: Path) -> None:
    check_log_url(f"sqlite:///{tmp_path / 'new' / 'log.db'}")
    assert not (tmp_path / "new").exists()
    with pytest.raises(UnsupportedLogURL):
        check_log_url("sqlite:///:memory:")


# --- the test broker's options ---------------------------------------------------------------


def test_tansu_url_carries_its_client_options(tansu: TansuBroker) -> None:
    parsed = parse_url(tansu.url)
    assert parsed.bootstrap == tansu.bootstrap
    assert parsed.options == dict(TANSU_CLIENT_OVERRIDES) == tansu.client_options
    consumer = check_url(tansu.url).consumer
    assert consumer["session.timeout.ms"] == "2000"
    assert consumer["fetch.wait.max.ms"] == "20"


@pytest.mark.kafka
def test_options_of_every_scope_open_without_librdkafka_warnings(tansu: TansuBroker) -> None:
    """A consumer option never reaches the producer or the admin client (librdkafka would print
    a CONFWARN line on stderr for each), and a producer option never reaches a consumer."""
    url = with_log_options(
        tansu.url, {"linger.ms": "2", "client.id": "scope-test", "max.poll.interval.ms": "60000"}
    )
    script = f"""
import uuid
from transport import open_log
with open_log({url!r}) as log:
    topic = "scope-" + uuid.uuid4().hex[:8]
    log.append(topic, b"x")
    log.flush()
    consumer = log.consumer("g-" + topic, [topic])
    got = []
    for _ in range(100):
        got += consumer.poll(timeout=0.1)
        if got and consumer.at_end():
            break
    assert [r.value for r in got] == [b"x"], got
    assert [r.value for r in log.read_all(topic)] == [b"x"]
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "CONFWARN" not in done.stderr, done.stderr
