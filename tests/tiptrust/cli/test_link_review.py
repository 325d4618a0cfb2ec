"""`tiptrust link review|why|separate|join` on a trust that really ran (the demo's home): levels
and weights without values, the one audited view of values, decisions that linkage follows and
the release follows, and clear errors (exit 2, no traceback) for unknown ids."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from tiptrust import wiring
from tiptrust.cli import app
from tiptrust.cli.common import Exit, console, out
from tiptrust.demo import run_demo
from tiptrust.home import Home
from trust.release.counts import cell_counts, contributing_sources
from trust.release.streams import STREAMS
from trust.stewardship.principals import Role, add_principal
from trust.store.events import IdentifiersViewed, LinkOverridden, ReleaseIssued
from trust.store.eventstore import EventStore, open_store
from trust.store.tables import link_features, proj_person_links, release_cell_counts

from .conftest import CUSTODIAN_TOKEN

STREAM = "victims_by_sex_age_form"  # the demo's subscription
IDENTIFYING = ("given_name", "surname", "date_of_birth", "document_number")


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Once per module: the demo (300 simulated persons) — agencies published, the trust ran
    (ingest, linkage, a release), reviews left open."""
    root = tmp_path_factory.mktemp("demo")
    summary = run_demo(root, persons=300, seed=1, custodian_token=CUSTODIAN_TOKEN)
    assert (
        summary.reviews_open >= 2 and summary.releases == 3
    )  # the demo subscribes to three streams
    store = open_store(f"sqlite:///{root / 'demo' / 'trust' / 'store.db'}")
    try:  # two more custodians, who review
        for name, token in TOKENS.items():
            add_principal(store, name, Role.CUSTODIAN, added_by="operator", token=token)
    finally:
        store.close()
    return root / "demo"


TOKENS = {
    name: f"tt1.{name.encode().hex():0<16}.{name}-secret-" + "x" * 40 for name in ("alice", "bob")
}


@dataclass
class Trust:
    home: Path
    token: str | None = None  # None: the conftest's custodian token

    def as_(self, name: str) -> Trust:
        """The same trust, acting as custodian ``name`` (alice or bob)."""
        return replace(self, token=TOKENS[name])

    def __call__(self, *args: str) -> Result:
        env = {} if self.token is None else {"TIPTRUST_TOKEN": self.token}
        return CliRunner().invoke(app, [*args, "--home", str(self.home)], env=env)

    def ok(self, *args: str) -> Result:
        done = self(*args)
        assert done.exit_code == 0, done.output
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def store(self) -> EventStore:
        return open_store(f"sqlite:///{self.home / 'trust' / 'store.db'}")

    def events(self, cls: type) -> list[Any]:
        s = self.store()
        try:
            return [ev for _, ev in s.read() if isinstance(ev, cls)]
        finally:
            s.close()

    def released(self) -> tuple[dict[tuple[str, ...], int], list[tuple[Any, ...]], str]:
        """After the trust runs: the stream's person counts per cell, the release stage's stored
        counts, and the digest of the stream's last release's cells (the demo releases two
        streams)."""
        self.ok("trust", "run")
        s = self.store()
        try:
            with s.engine.connect() as conn:
                cells = cell_counts(conn, STREAMS[STREAM], contributing_sources(conn, STREAM))
                stored = sorted(tuple(r) for r in conn.execute(select(release_cell_counts)))
        finally:
            s.close()
        last = [e for e in self.events(ReleaseIssued) if e.stream == STREAM][-1]
        return cells, stored, last.cells_digest

    def persons(self) -> dict[str, list[str]]:
        """Person id -> its records (``source/case/victim``), in link order."""
        s = self.store()
        c = proj_person_links.c
        try:
            with s.engine.connect() as conn:
                rows = conn.execute(
                    select(c.source_id, c.case_id, c.victim_id, c.person_id).order_by(c.linked_seq)
                ).all()
        finally:
            s.close()
        out: dict[str, list[str]] = defaultdict(list)
        for source, case, victim, person in rows:
            out[person].append(f"{source}/{case}/{victim}")
        return out

    def values(self, records: list[str]) -> set[str]:
        """The identifying values of these records, opened from the vault (test side only)."""
        s = self.store()
        try:
            resolver = wiring.resolver(wiring.vault(Home(self.home), s))
            found: set[str] = set()
            with s.engine.connect() as conn:
                for row in conn.execute(select(link_features)).mappings():
                    key = f"{row['source_id']}/{row['case_id']}/{row['victim_id']}"
                    record = resolver.open_features(dict(row)) if key in records else None
                    if record is not None:
                        found |= {getattr(record, f) for f in IDENTIFYING}
        finally:
            s.close()
        return {v for v in found if len(v) >= 3}


@pytest.fixture
def trust(demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Trust]:
    """A private copy of the demo's home; output wide enough that no value wraps in a table."""
    shutil.copytree(demo_home, tmp_path / "demo")
    monkeypatch.setattr(out, "width", 400)
    monkeypatch.setattr(console, "width", 400)
    yield Trust(tmp_path / "demo")


def test_show_prints_levels_and_weights_and_no_value_and_values_only_on_request(
    trust: Trust,
) -> None:
    (first, *_) = trust.json("link", "review", "list")
    assert first["status"] == "open" and first["candidates"]
    review = first["review_id"]
    text = trust.ok("link", "review", "show", review).stdout
    shown = trust.json("link", "review", "show", review)
    assert shown["record"] == first["record"] and shown["status"] == "open"
    pair = shown["candidates"][0]["pairs"][0]
    levels = {x["comparison"]: x for x in pair["levels"]}
    assert {"given_name", "surname", "date_of_birth", "document_number"} <= set(levels)
    assert all(isinstance(x["level"], str) and not x["level"].isdigit() for x in levels.values())
    assert levels["given_name"]["level"] in text and pair["with"] in text
    assert f"{pair['match_weight']:.2f}" in text
    assert trust.events(IdentifiersViewed) == []  # nothing was viewed

    viewed = trust.as_("alice").json("link", "review", "show", review, "--values")
    values = viewed["values"]
    records = [first["record"], *(p["with"] for c in shown["candidates"] for p in c["pairs"])]
    assert set(values) == set(records)
    secret = trust.values(records)
    assert secret and {v for r in values.values() for v in r.values()} >= secret
    leaked = [v for v in secret if v in text or v in json.dumps(shown)]
    assert leaked == []
    (event,) = trust.events(IdentifiersViewed)
    assert event.operator == "alice" and review in event.purpose
    assert sorted("/".join(v.key()) for v in event.victims) == sorted(set(records))

    table = trust.as_("bob").ok("link", "review", "show", review, "--values").output
    assert all(v in table for v in secret) and "audit trail" in table
    assert [e.operator for e in trust.events(IdentifiersViewed)] == ["alice", "bob"]


def test_accept_merges_the_persons_and_the_release_follows(trust: Trust) -> None:
    before_cells, _, _ = trust.released()
    before = trust.persons()
    # a review whose best candidate is another person than the record's own (a review between
    # persons that compete for a record it already sits with would merge nobody)
    review, best = next(
        (r, b)
        for r in trust.json("link", "review", "list")
        if (b := max(r["candidates"], key=r["candidates"].get)) != r["person_id"]
    )
    decided = trust.as_("alice").json("link", "review", "accept", review["review_id"])
    assert decided["operator"] == "alice"  # the principal of the token
    assert decided["decision"] == "accepted" and decided["record"] == review["record"]
    persons = trust.persons()
    assert decided["person"] == best  # the older id survives: the candidate's
    assert review["person_id"] not in persons  # absorbed: it holds no record now
    assert sorted(persons[best]) == sorted(before[best] + before[review["person_id"]])
    assert review["record"] in persons[best] and set(decided["others"]) <= set(persons[best])

    after_cells, _, _ = trust.released()
    assert sum(after_cells.values()) == sum(before_cells.values()) - 1
    listed = {r["review_id"]: r["status"] for r in trust.json("link", "review", "list", "--all")}
    assert listed[review["review_id"]] == "accepted"

    for verb in ("accept", "reject"):  # a closed review is not decided again
        again = trust("link", "review", verb, review["review_id"])
        assert again.exit_code == Exit.REFUSED
        assert "accepted" in again.output and "Traceback" not in again.output
    assert len(trust.events(LinkOverridden)) == 1


def test_reject_keeps_the_record_apart(trust: Trust) -> None:
    review = trust.json("link", "review", "list")[-1]
    decided = trust.json("link", "review", "reject", review["review_id"])
    # a record of its own stays so; one placed provisionally with a candidate leaves it
    assert decided["decision"] == "rejected" and decided["person"] not in review["candidates"]
    assert decided["operator"] == "operator"  # the demo's custodian, whose token it is
    persons = trust.persons()
    # apart from every candidate (records that later joined the record's own person stay)
    kept = persons[decided["person"]]
    assert review["record"] in kept
    assert not {r for c in review["candidates"] for r in persons.get(c, [])} & set(kept)
    assert set(decided["other_persons"]) == set(review["candidates"])
    assert not {r["review_id"] for r in trust.json("link", "review", "list")} & {
        review["review_id"]
    }


def test_a_wrong_merge_undone_by_separate_changes_the_release_back(trust: Trust) -> None:
    singles = [records[0] for records in trust.persons().values() if len(records) == 1]
    a = singles[0]
    b = next(r for r in singles if r.split("/")[0] != a.split("/")[0])
    before = trust.released()

    joined = trust.as_("alice").json("link", "join", a, b, "--operator", "alice")
    assert joined["persons"][0] == joined["persons"][1]
    merged = trust.released()
    assert sum(merged[0].values()) == sum(before[0].values()) - 1
    assert merged[1] != before[1] and merged[2] != before[2]  # a new release went out

    parted = trust.as_("alice").json("link", "separate", a, b)
    assert parted["persons"][0] != parted["persons"][1]
    assert trust.released() == before  # every count, and the released cells, are back
    verdict = trust.json("link", "why", "--records", a, b)["operator_verdict"]
    assert verdict == "different"


def test_why_explains_with_ids_levels_and_weights_and_no_value(trust: Trust) -> None:
    person, records = max(trust.persons().items(), key=lambda kv: len(kv[1]))
    assert len(records) >= 2
    text = trust.ok("link", "why", "--person", person).stdout
    history = trust.json("link", "why", "--person", person)
    assert history["now"] == person and history["records"] == records
    linked = [e for e in history["history"] if e["what"] == "linked"]
    assert {e["record"] for e in linked} >= set(records)
    joined = next(e for e in linked if e["decision"] == "joined")
    assert joined["evidence"][0]["probability"] >= 0.9
    assert {x["level"] for x in joined["evidence"][0]["levels"]} & {"exact"}

    pair = trust.json("link", "why", "--records", records[0], records[1])
    assert pair["persons"] == [person, person] and pair["operator_verdict"] is None
    assert pair["agreements_allow"] is True
    assert len(pair["levels"]) == len(joined["evidence"][0]["levels"])
    pair_text = trust.ok("link", "why", "--records", records[0], records[1]).stdout
    assert "match weight" in pair_text and pair["levels"][0]["level"] in pair_text

    secret = trust.values(records)
    assert secret
    everything = text + json.dumps(history) + json.dumps(pair) + pair_text
    assert [v for v in secret if v in everything] == []


def test_unknown_ids_and_bad_requests_exit_2_without_traceback(trust: Trust) -> None:
    review = trust.json("link", "review", "list")[0]["review_id"]
    record = next(iter(trust.persons().values()))[0]
    cases = [
        (("link", "review", "show", "no-such-review"), "no review has this id"),
        (("link", "review", "accept", "no-such-review"), "no review has this id"),
        (("link", "review", "reject", review, "--person", "P-404"), "not a candidate"),
        (("link", "why", "--person", "P-404"), "no person has this id"),
        (("link", "why", "--records", record, "police/NO-CASE/v9"), "not linked"),
        (("link", "why", "--records", record, "no-slashes"), "SOURCE/CASE/VICTIM"),
        (("link", "why"), "--person"),
        (("link", "separate", record, "police/NO-CASE/v9"), "not linked"),
        (("link", "join", record, record), "two different records"),
    ]
    for args, message in cases:
        done = trust(*args)
        assert done.exit_code == Exit.USAGE, (args, done.output)
        assert isinstance(done.exception, SystemExit)
        assert message in done.output and "Traceback" not in done.output
    assert trust.events(LinkOverridden) == []


def test_without_the_trusts_vault_key_nothing_is_shown_or_decided(
    trust: Trust, tmp_path: Path
) -> None:
    review = trust.json("link", "review", "list")[0]["review_id"]
    store = f"sqlite:///{trust.home / 'trust' / 'store.db'}"
    elsewhere = tmp_path / "not-the-trust"
    for args in (("show", review, "--values"), ("accept", review)):
        done = CliRunner().invoke(
            app, ["link", "review", *args, "--store", store, "--home", str(elsewhere)]
        )
        assert done.exit_code == Exit.NOT_SET_UP, done.output
        assert "vault key" in done.output
    assert trust.events(IdentifiersViewed) == [] and trust.events(LinkOverridden) == []
