"""The review queue through the real `tiptrust` process, after the demo: with diagnostics at debug
level, `link review show` and `link why` print ids, levels and weights, and no identifying value —
neither as the agencies exported it nor as the trust holds it — reaches stdout or stderr."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from tiptrust import wiring
from tiptrust.home import Home
from trust.linkage.review import open_reviews, person_records, review_detail
from trust.store.eventstore import open_store
from trust.store.tables import link_features

from .conftest import RunCli, identifying_values, last_json

DEBUG = {"TIPTRUST_LOGGING_LEVEL": "debug"}
IDENTIFYING = ("given_name", "surname", "date_of_birth", "document_number")


def test_review_show_and_why_through_the_cli_print_no_identifying_value(
    cli: RunCli, tmp_path: Path
) -> None:
    # a seed whose 300 persons leave reviews open (most small demos leave none now)
    summary = last_json(cli("demo", "--persons", "300", "--seed", "1", "--json").stdout)
    root = tmp_path / "home" / "demo"
    secret: set[str] = set()
    for source in summary["by_source"]:
        agency = root / "agencies" / source
        secret |= identifying_values(agency / "records.csv", agency / "mapping.yaml")

    store = open_store(f"sqlite:///{root / 'trust' / 'store.db'}")
    try:
        resolver = wiring.resolver(wiring.vault(Home(root), store))
        first = open_reviews(store)[0]
        detail = review_detail(store, resolver.linker.model, first.review_id)
        person = detail.candidates[0].current
        involved = {"/".join(v.key()) for v in [first.victim, *person_records(store, person)]}
        held: set[str] = set()  # the values as the trust holds them (opened from the vault)
        with store.engine.connect() as conn:
            for row in conn.execute(select(link_features)).mappings():
                if f"{row['source_id']}/{row['case_id']}/{row['victim_id']}" in involved:
                    record = resolver.open_features(dict(row))
                    assert record is not None
                    held |= {getattr(record, f) for f in IDENTIFYING if getattr(record, f)}
    finally:
        store.close()
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\d", v) for v in held)  # dates of birth too
    secret |= {v for v in held if len(v) >= 3}

    def run(*args: str) -> str:
        done = cli("link", *args, "--home", str(root), env=DEBUG)
        return done.stdout + done.stderr

    said = run("review", "show", first.review_id) + run("why", "--person", person)
    assert first.review_id in said and person in said and "probability" in said
    assert [v for v in secret if v in said] == []
