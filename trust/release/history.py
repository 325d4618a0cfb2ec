"""What each consumer was given: every exact value of every aggregate in its recorded releases,
which aggregates the latest release of each of its streams suppressed (and which of those the
carry rule guards), per stream the suppression pattern of the latest release made from each
exact count table (the replay rule) and every category each dimension has published (sticky
categories).

Read from the store's ``ReleaseIssued`` events (their signed bytes are exactly what left the
trust, their metadata what the stage noted for itself), incrementally: the release stage asks
before each release, so the differencing rule (``disclosure/differencing.md``) sees every earlier
release, those of the same check included.

Two notes the stage keeps in a release's event metadata, never in the signed release:
``counts_digest`` — HMAC-SHA256, under a key derived from the trust's record-key secret, of the
exact count table the release was made from (:func:`counts_digest`; keyed, so that it cannot be
tested against guesses of the suppressed values) — and ``guarded`` — a bitmap over the release's
aggregates (base64, first aggregate in the most significant bit of the first byte) of the
suppressed ones the carry rule guards. A cumulative series' release keeps a third, ``continual``:
the series' state (``disclosure/continual.py``'s :class:`Series`: its months' exact counts and
every tree node drawn), so that a restarted trust never draws a node again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from schemas.release import Release, decode_release
from trust.release.rates import implied_counts
from trust.store.events import ReleaseIssued
from trust.store.eventstore import EventStore

if TYPE_CHECKING:  # numpy-free at import: only the type
    from trust.release.aggregate import CountTable

AggregateKey = tuple[tuple[str, ...], tuple[str, ...]]
"""An aggregate of a release: (the dimensions it is broken down by, its categories)."""

Membership = tuple[tuple[str, frozenset[str]], ...]
"""For an aggregate with the residual category ``Rest`` in some dimensions: each such dimension
with every category its release published there (``Rest`` held every other code)."""

#: The residual category of most-frequent dimensions (``categories.REST``; not imported: the
#: history is read without the stream declarations).
_REST = "Rest"

_PAGE = 500
_COUNTS_PURPOSE = b"tiptrust/release/counts-digest/v1"

#: Event-metadata keys of the stage's own notes (never in the signed release).
COUNTS_DIGEST = "counts_digest"
GUARDED = "guarded"
CONTINUAL = "continual"


def counts_key(record_key_secret: bytes) -> bytes:
    """The key of :func:`counts_digest`, derived from the trust's record-key secret with its own
    label (independent of the record keys themselves)."""
    return hmac.digest(record_key_secret, _COUNTS_PURPOSE, "sha256")


def counts_digest(key: bytes, counts: CountTable, k: int) -> str:
    """HMAC-SHA256 (hex) of the exact count table a release is made from — stream, dimensions,
    categories, every cell's count, structural zeros, period — and the k it is protected at.

    Equal digests mean equal exact values of every cell, margin and total (margins are sums of
    cells). Keyed: a digest of a small table could otherwise be tested against every guess of
    its suppressed values.
    """
    canonical = {
        "stream": counts.stream,
        "dimensions": list(counts.dimensions),
        "categories": [list(c) for c in counts.categories],
        "counts": [counts.counts.get(key, 0) for key in counts.cell_keys()],
        "structural_zeros": sorted(list(z) for z in counts.structural_zeros),
        "period": [counts.period_start, counts.period_end],
        "k": k,
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, encoded.encode("ascii"), hashlib.sha256).hexdigest()


def guarded_bitmap(aggregates: Sequence[AggregateKey], guarded: Collection[AggregateKey]) -> str:
    """The ``guarded`` note: which of a release's aggregates (in its order) are guarded."""
    wanted = set(guarded)
    bits = bytearray((len(aggregates) + 7) // 8)
    for i, key in enumerate(aggregates):
        if key in wanted:
            bits[i // 8] |= 0x80 >> (i % 8)
    return base64.b64encode(bytes(bits)).decode("ascii")


def _guarded_of(release: Release, note: object) -> frozenset[AggregateKey]:
    """The aggregates ``note`` marks; every suppressed one when the note is missing or does not
    fit the release (a release recorded before the note: the conservative reading)."""
    hidden = frozenset((a.dimensions, a.key) for a in release.aggregates if a.value is None)
    if not isinstance(note, str):
        return hidden
    try:
        bits = base64.b64decode(note, validate=True)
    except ValueError:
        return hidden
    if len(bits) != (len(release.aggregates) + 7) // 8:
        return hidden
    marked = frozenset(
        (a.dimensions, a.key)
        for i, a in enumerate(release.aggregates)
        if bits[i // 8] & (0x80 >> (i % 8))
    )
    return marked & hidden


class PublishedHistory:
    """Exact values published to each consumer, per aggregate (dimensions, categories), over
    all its streams."""

    def __init__(self) -> None:
        self._after = 0
        self._values: dict[str, dict[AggregateKey, set[float]]] = {}  # counts and rates
        # per (consumer, stream): the aggregates its latest release suppressed, and guarded
        self._hidden: dict[tuple[str, str], frozenset[AggregateKey]] = {}
        self._guarded: dict[tuple[str, str], frozenset[AggregateKey]] = {}
        # per (consumer, stream, counts digest): the store position of the latest release made
        # from those exact counts (read again only when asked: a four-way release's pattern is
        # thousands of keys, too many to keep for every release)
        self._by_counts: dict[tuple[str, str, str], int] = {}
        # per (consumer, stream): every category each dimension published in any release
        self._categories: dict[tuple[str, str], dict[str, set[str]]] = {}
        # per consumer: the exact values of aggregates holding Rest, each with what Rest held
        self._rest: dict[str, dict[AggregateKey, set[tuple[float, Membership]]]] = {}
        # per (consumer, stream): a cumulative series' state after its latest release
        self._series: dict[tuple[str, str], str] = {}

    def update(self, store: EventStore) -> None:
        """Take in the releases recorded since the last update."""
        upto = store.last_seq()
        while self._after < upto:
            page = store.read_types(
                [ReleaseIssued.event_type], self._after, upto, _PAGE, records=False
            )
            for seq, ev in page:
                if isinstance(ev, ReleaseIssued) and ev.signed_b64:
                    self._add(ev.consumer, base64.b64decode(ev.signed_b64), ev.metadata, seq)
            if len(page) < _PAGE:
                self._after = upto
            else:
                self._after = page[-1][0]

    def _add(self, consumer: str, raw: bytes, notes: Mapping[str, object], seq: int = 0) -> None:
        release = decode_release(raw)  # the trust's own recorded bytes
        # a rate and its public denominator publish the count: remember the count
        counts = implied_counts(release)
        values = self._values.setdefault(consumer, {})
        hidden = frozenset((a.dimensions, a.key) for a in release.aggregates if a.value is None)
        self._hidden[(consumer, release.stream)] = hidden
        self._guarded[(consumer, release.stream)] = _guarded_of(release, notes.get(GUARDED))
        here: dict[str, set[str]] = {}
        for a in release.aggregates:
            for dimension, category in zip(a.dimensions, a.key, strict=True):
                here.setdefault(dimension, set()).add(category)
        published = self._categories.setdefault((consumer, release.stream), {})
        for dimension, cats in here.items():
            published.setdefault(dimension, set()).update(cats)
        rest = self._rest.setdefault(consumer, {})
        for a in release.aggregates:
            if a.exact and a.value is not None and _REST in a.key:
                held = tuple(
                    (d, frozenset(here[d]))
                    for d, c in zip(a.dimensions, a.key, strict=True)
                    if c == _REST
                )
                rest.setdefault((a.dimensions, a.key), set()).add(
                    (counts[(a.dimensions, a.key)], held)
                )
        series = notes.get(CONTINUAL)
        if isinstance(series, str) and series:
            self._series[(consumer, release.stream)] = series
        digest = notes.get(COUNTS_DIGEST)
        if isinstance(digest, str) and digest:
            self._by_counts[(consumer, release.stream, digest)] = seq
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

    def guarded(self, consumer: str, stream: str) -> frozenset[AggregateKey] | None:
        """The aggregates the latest release of ``stream`` to ``consumer`` hid that the carry
        rule guards (``disclosure/differencing.md``): below k then, or guarded in the release
        before and below 2k then. Every hidden one for a release recorded without the note;
        None before the first release."""
        return self._guarded.get((consumer, stream))

    def made_from(
        self, store: EventStore, consumer: str, stream: str, digest: str
    ) -> frozenset[AggregateKey] | None:
        """What the latest release of ``stream`` to ``consumer`` made from the exact counts
        whose :func:`counts_digest` is ``digest`` suppressed (read again from ``store``, where
        :meth:`update` found it); None when no release was."""
        seq = self._by_counts.get((consumer, stream, digest))
        if seq is None:
            return None
        page = store.read_types([ReleaseIssued.event_type], seq - 1, seq, 1, records=False)
        for _, ev in page:
            if isinstance(ev, ReleaseIssued) and ev.signed_b64:
                release = decode_release(base64.b64decode(ev.signed_b64))
                return frozenset(
                    (a.dimensions, a.key) for a in release.aggregates if a.value is None
                )
        return None

    def series(self, consumer: str, stream: str) -> str | None:
        """The state of the cumulative series ``stream`` after its latest release to
        ``consumer`` (its ``continual`` note); None before its first release."""
        return self._series.get((consumer, stream))

    def categories(self, consumer: str, stream: str) -> dict[str, frozenset[str]]:
        """Every category (and parent) each dimension of ``stream`` published to ``consumer`` in
        any of its releases (the sticky categories of most-frequent dimensions)."""
        published = self._categories.get((consumer, stream), {})
        return {dimension: frozenset(cats) for dimension, cats in published.items()}

    def rest_values(self, consumer: str) -> Mapping[AggregateKey, set[tuple[float, Membership]]]:
        """Every exact value published to ``consumer`` of an aggregate holding ``Rest``, with the
        categories its release published in each dimension where it holds ``Rest`` (what
        ``Rest`` held then: every other code)."""
        return self._rest.get(consumer, {})
