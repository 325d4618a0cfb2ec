"""The conformance suite on the Kafka backend: on the session's Tansu broker (always), and on
an Apache Kafka cluster named by ``TIPTRUST_REAL_KAFKA`` (``real_kafka``; skipped when unset).

Both run the same backend, so what differs is the broker: each subclass names its broker and
declares its capabilities. Tansu's known gaps and how the suite treats them:

* ListOffsets returns wrong high watermarks: the port never asks for watermarks (``at_end``
  comes from partition-EOF events, each with the end offset it reported, and an EOF short of
  the log's own acknowledged appends is stale), and ``test_at_end_never_claims_caught_up_early`` runs on
  every backend, so nothing is declared.
* JoinGroup is held for ``session.timeout.ms / 2`` and a waiting fetch is not woken by new data:
  timings, not semantics; Tansu's URL carries short ones (``infra.broker.TANSU_CLIENT_OVERRIDES``)
  and the real broker runs with the production defaults.
* Memory storage: "reopen" is a new client on the same running broker, on both.
* DeleteRecords: Tansu drops the connection; the backend reports ``DeleteUnsupported`` and the
  test checks that on Tansu (the trust then tells the operator to bound ``retention.ms``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from infra.broker import TansuBroker
from tests.transport.conformance import EventLogConformance, drain, values
from transport import EventLog, LogUnavailable, open_log


class KafkaConformance(EventLogConformance):
    """The suite on the Kafka backend; a subclass names its broker by overriding ``kafka_url``."""

    url = ""

    @pytest.fixture(scope="class")
    @classmethod
    def kafka_url(cls) -> str:
        raise NotImplementedError("a subclass names its broker")

    @pytest.fixture(scope="class")
    @classmethod
    def shared_log(cls, kafka_url: str) -> Iterator[EventLog]:
        # One client per class: an idempotent producer's start costs ~0.5 s (librdkafka waits
        # before acquiring its producer id). Tests use unique topics, so they do not see each
        # other; reopening is tested through make_log().
        with open_log(kafka_url) as log:
            yield log

    @pytest.fixture(autouse=True)
    def _broker(self, kafka_url: str) -> None:
        self.url = kafka_url

    @pytest.fixture
    def log(self, shared_log: EventLog) -> EventLog:
        return shared_log

    def make_log(self) -> EventLog:
        return open_log(self.url)

    def test_an_eof_from_before_an_own_append_is_stale(
        self, log: EventLog, topic: str, new_name: Callable[[str], str]
    ) -> None:
        # The partition EOF the consumer holds was reported before this log's append: it no
        # longer says "caught up", even before the next poll (a poll that meets a fetch which
        # began before the append and is not woken would otherwise end a drain early).
        consumer = log.consumer(new_name("g"), [topic])
        try:
            assert drain(consumer) == []
            assert consumer.at_end()
            log.append(topic, b"late")
            log.flush()
            assert not consumer.at_end()
            assert values(drain(consumer)) == [b"late"]
            assert consumer.at_end()
        finally:
            consumer.close()

    def provoke_delivery_failure(self, value: bytes) -> None:
        # librdkafka refuses a message above the producer's message.max.bytes.
        with open_log(self.url, producer={"message.max.bytes": 1000}) as log:
            log.append("too-big", value * 200)
            log.flush()


@pytest.mark.kafka
class TestKafkaLog(KafkaConformance):
    """On Tansu, with the client options its URL carries."""

    capabilities = frozenset({"multi_member_groups", "multi_process_writers"})

    @pytest.fixture(scope="class")
    @classmethod
    def kafka_url(cls, tansu: TansuBroker) -> str:
        return tansu.url


@pytest.mark.real_kafka
class TestRealKafkaLog(KafkaConformance):
    """On Apache Kafka (``TIPTRUST_REAL_KAFKA``), with the production client defaults."""

    capabilities = frozenset({"multi_member_groups", "multi_process_writers", "delete_records"})

    @pytest.fixture(scope="class")
    @classmethod
    def kafka_url(cls, real_kafka_url: str) -> str:
        return real_kafka_url


def test_unreachable_broker_is_log_unavailable() -> None:
    with open_log("kafka://127.0.0.1:9", timeout=1.0) as log, pytest.raises(LogUnavailable):
        log.list_topics()
