"""The trust's stages run together: ingest, then the followers, then release what changed.

Each stage is a small object built by the composition root (``tiptrust/``); this module only
sequences them. Ingest writes inbound facts; the receipt publisher follows the store; the release
stage (:mod:`trust.release.stage`) plans, counts, signs and RECORDS each subscription's release
when its figures changed; the release publisher, another follower, then puts exactly those bytes
on the subscription's topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from trust.follow import LogPublisher, StoreFollower, follow
from trust.ingest.worker import IngestStats, IngestWorker
from trust.release import counts as release_counts
from trust.release.publish import EmitResult
from trust.release.stage import ReleaseStage
from trust.release.streams import StreamSpec
from trust.store.eventstore import EventStore


def rebuild(store: EventStore, streams: Mapping[str, StreamSpec]) -> int:
    """Rebuild every projection from the stored events: the ingest projections by replay, the
    followers' by resetting them to position 0 and following. Returns the events replayed."""
    replayed = store.rebuild_projections()
    counts = release_counts.ReleaseCounts(streams)
    store.reset_follower(counts.name, counts.clear)
    follow(store, counts)
    return replayed


@dataclass
class RunSummary:
    ingest: IngestStats
    releases: list[EmitResult]


class TrustRunner:
    """Ingest until caught up (or stopped), releasing at most once per interval along the way."""

    def __init__(
        self,
        *,
        worker: IngestWorker,
        releases: Sequence[ReleaseStage],
        followers: Sequence[StoreFollower | LogPublisher] = (),
        before_follow: Sequence[Callable[[], object]] = (),
        after_follow: Sequence[Callable[[], object]] = (),
        at_stop: Sequence[Callable[[], object]] = (),
        release_every_s: float = 5.0,
        send_releases: Callable[[], object] | None = None,
    ) -> None:
        self.worker = worker
        self.releases = list(releases)
        self.followers = list(followers)
        self.before_follow = list(before_follow)
        self.after_follow = list(after_follow)
        self.at_stop = list(at_stop)  # run once when run() returns (e.g. a final clean-up)
        self.release_every_s = release_every_s
        # sends what the release stages recorded (the release publisher, followed): called after
        # each release, so a quick stream's release is on its topic before a slow one is made
        self.send_releases = send_releases

    def follow(self) -> None:
        """Run what the followers must see (e.g. scheduled retention's disposals), bring every
        follower up to the store's end (erasure, receipts, release publishing), then run what
        must follow them (e.g. the KEK rotation that makes a shred final)."""
        for first in self.before_follow:
            first()
        for f in self.followers:
            follow(self.worker.store, f)
        for then in self.after_follow:
            then()

    def release(self, on_release: Callable[[EmitResult], None] | None = None) -> list[EmitResult]:
        """Check every release stage; each release is sent (``send_releases``) as soon as it is
        recorded, then given to ``on_release``. Returns the releases made."""

        def recorded(result: EmitResult) -> None:
            if self.send_releases is not None:
                self.send_releases()
            if on_release is not None:
                on_release(result)

        made: list[EmitResult] = []
        for stage in self.releases:
            made.extend(stage.release_once(on_recorded=recorded))
        return made

    def run(
        self,
        *,
        until_caught_up: bool = True,
        max_seconds: float | None = None,
        on_step: Callable[[IngestStats], None] | None = None,
        on_release: Callable[[EmitResult], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> RunSummary:
        total = IngestStats()
        emitted: list[EmitResult] = []
        start = time.monotonic()
        last_release = time.monotonic()
        self.follow()  # whatever a crash left unsent goes first
        while not should_stop():
            s = self.worker.step()
            total.add(s)
            if on_step is not None:
                on_step(s)
            now = time.monotonic()
            caught_up = s.messages == 0 and s.caught_up
            if caught_up or now - last_release >= self.release_every_s:
                emitted.extend(self.release(on_release))
                # the cadence runs from the end of a check, so a slow check cannot starve ingest
                last_release = time.monotonic()
            self.follow()
            if until_caught_up and caught_up:
                total.caught_up = True
                break
            if max_seconds is not None and now - start > max_seconds:
                break
        for last in self.at_stop:
            last()
        return RunSummary(total, emitted)
