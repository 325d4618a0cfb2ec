"""The conformance suite on the Kafka backend, against the session's Tansu broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.broker import TansuBroker
from tests.transport.conformance import EventLogConformance
from transport import EventLog, LogUnavailable, open_log

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def shared_log(tansu: TansuBroker) -> Iterator[EventLog]:
    with open_log(tansu.url) as log:
        yield log


class TestKafkaLog(EventLogConformance):
    # Tansu shares partitions between members of a group correctly; its ListOffsets gap is
    # covered by test_at_end_never_claims_caught_up_early. A restart of the broker loses
    # everything (memory storage), so "reopen" means a new client on the same broker.
    capabilities = frozenset({"multi_member_groups", "multi_process_writers"})

    @pytest.fixture(autouse=True)
    def _broker(self, tansu: TansuBroker) -> None:
        self.url = tansu.url

    @pytest.fixture
    def log(self, shared_log: EventLog) -> EventLog:
        # One client for the class: an idempotent producer's start costs ~0.5 s (librdkafka
        # waits before acquiring its producer id). Tests use unique topics, so they do not
        # see each other; reopening is tested through make_log().
        return shared_log

    def make_log(self) -> EventLog:
        return open_log(self.url)

    def provoke_delivery_failure(self, value: bytes) -> None:
        # librdkafka refuses a message above the producer's message.max.bytes.
        with open_log(self.url, producer={"message.max.bytes": 1000}) as log:
            log.append("too-big", value * 200)
            log.flush()


def test_unreachable_broker_is_log_unavailable() -> None:
    with open_log("kafka://127.0.0.1:9", timeout=1.0) as log, pytest.raises(LogUnavailable):
        log.list_topics()
