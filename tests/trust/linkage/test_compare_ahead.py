"""The resolver compares a batch's new records with the records they will most likely meet in
one pass ahead of placing them (``_Run._compare_ahead``). That is only a faster way to the same
numbers: every decision, with each pair's levels, weight and probability, is what comparing
record by record gives — whatever records the batch holds and however they meet."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from trust.follow import follow
from trust.linkage import resolver as resolver_module
from trust.store.events import LinkReviewOpened, RecordLinked
from trust.store.eventstore import open_store

from .test_determinism import Accept, Op, histories, store_ops
from .test_resolver import Trust


def _decisions(ops: Sequence[Op], ahead: bool) -> list[Any]:
    """Each decision in the order made: the record, the decision, and each pair of its
    evidence (and of its review's candidates) with levels, weight and probability; person ids
    (drawn anew in each run) named by the order they first appear."""
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as patch:
        if not ahead:
            patch.setattr(resolver_module._Run, "_compare_ahead", lambda run, upserts: None)
        store = open_store(f"sqlite:///{Path(d) / 'store.db'}")
        try:
            trust = Trust(store)
            store_ops(trust, ops)
            follow(store, trust.resolver, page=10**6)  # one batch: every record compared ahead
            names: dict[str, int] = {}

            def name(person: str) -> int:
                return names.setdefault(person, len(names))

            def pairs(evidence: Sequence[Any]) -> list[Any]:
                return [
                    (e.other, e.probability, e.match_weight, sorted(e.levels.items()))
                    for e in evidence
                ]

            out: list[Any] = []
            for ev in [*trust.events(RecordLinked), *trust.events(LinkReviewOpened)]:
                if isinstance(ev, RecordLinked):
                    out.append((ev.victim, name(ev.person_id), ev.decision, pairs(ev.evidence)))
                else:
                    out.append(
                        (
                            ev.victim,
                            name(ev.person_id),
                            sorted((name(p), pairs(e)) for p, e in ev.candidates.items()),
                        )
                    )
            return out
        finally:
            store.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(histories())
def test_compared_ahead_or_record_by_record_the_decisions_are_the_same(ops: list[Op]) -> None:
    assert _decisions(ops, ahead=True) == _decisions(ops, ahead=False)


def test_a_batch_of_namesakes_is_compared_ahead_and_decided_as_record_by_record() -> None:
    """Records that meet each other within one batch (the police, the NGO and the court each
    recording the same few persons), so that most pairs are with records the batch placed."""
    from datetime import date

    from .test_resolver import ids

    people = [
        ids("Ana", "Popescu", dob=date(1990, 5, 17)),
        ids("Anna", "Popesku", dob=date(1990, 5, 17)),
        ids("Mei", "Li", dob=date(1988, 2, 3)),
        ids("Mei", "Li"),
        ids("Olena", "Ivanova", dob=date(1979, 1, 9)),
    ]
    ops: list[Op] = [
        Accept(source, f"C{n}-{source}", (("v1", "Feminine", person),), 2023 + n % 2)
        for n, person in enumerate(people * 3)
        for source in ("police", "ngo", "court")
    ]
    ahead = _decisions(ops, ahead=True)
    assert len(ahead) >= len(ops)
    assert ahead == _decisions(ops, ahead=False)
