"""What each consumer was given: every exact value of every aggregate in its recorded releases,
and which aggregates the latest release of each of its streams suppressed.

Read from the store's ``ReleaseIssued`` events (their signed bytes are exactly what left the
trust), incrementally: the release stage asks before each release, so the differencing rule
(``disclosure/differencing.md``) sees every earlier release, those of the same check included.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from schemas.release import decode_release
from trust.release.rates import implied_counts
from trust.store.events import ReleaseIssued
from trust.store.eventstore import EventStore

AggregateKey = tuple[tuple[str, ...], tuple[str, ...]]
"""An aggregate of a release: (the dimensions it is broken down by, its categories)."""

_PAGE = 500


class PublishedHistory:
    """Exact values published to each consumer, per aggregate (dimensions, categories), over
    all its streams."""

    def __init__(self) -> None:
        self._after = 0
        self._values: dict[str, dict[AggregateKey, set[float]]] = {}  # counts and rates
        # per (consumer, stream): the aggregates its latest release suppressed
        self._hidden: dict[tuple[str, str], frozenset[AggregateKey]] = {}

    def update(self, store: EventStore) -> None:
        """Take in the releases recorded since the last update."""
        upto = store.last_seq()
        while self._after < upto:
            page = store.read_types(
                [ReleaseIssued.event_type], self._after, upto, _PAGE, records=False
            )
            for _, ev in page:
                if isinstance(ev, ReleaseIssued) and ev.signed_b64:
                    self._add(ev.consumer, base64.b64decode(ev.signed_b64))
            if len(page) < _PAGE:
                self._after = upto
            else:
                self._after = page[-1][0]

    def _add(self, consumer: str, raw: bytes) -> None:
        release = decode_release(raw)  # the trust's own recorded bytes
        # a rate and its public denominator publish the count: remember the count
        counts = implied_counts(release)
        values = self._values.setdefault(consumer, {})
        self._hidden[(consumer, release.stream)] = frozenset(
            (a.dimensions, a.key) for a in release.aggregates if a.value is None
        )
        for a in release.aggregates:
            # a rounded or perturbed value (exact False) is not an exact publication
            if a.exact and a.value is not None:
                values.setdefault((a.dimensions, a.key), set()).add(counts[(a.dimensions, a.key)])

    def of(self, consumer: str) -> Mapping[AggregateKey, set[float]]:
        """Every exact value published to ``consumer``, per aggregate."""
        return self._values.get(consumer, {})

    def suppressed(self, consumer: str, stream: str) -> frozenset[AggregateKey] | None:
        """The aggregates the latest release of ``stream`` to ``consumer`` left without a value
        — suppressed, or (a rate without a denominator) not published — None before its first
        release: secondary suppression starts from them (they are unknown to the consumer)."""
        return self._hidden.get((consumer, stream))
