"""`tiptrust agreement submit|show|history|diff|purposes`, `trust register --agreement` as the
first signed version, a home whose agreements are files still loading, and `tiptrust trust
retention` (dry run and --apply)."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner, Result

from schemas.keys import SigningKey, public_pem
from tests.trust.store.builders import case_record, eid
from tiptrust import wiring
from tiptrust.cli import app
from tiptrust.home import Home
from trust.stewardship.agreement import FORMAT, parse_document
from trust.store.errors import KeyShredded
from trust.store.events import AgreementSubmitted, RecordAccepted
from trust.store.eventstore import Position, open_store
from trust.store.tables import stored_events

V1 = """\
format: 4
source_id: police
version: 1
in_force_from: 2020-01-01
fields_shared: ['$']
releases_allowed:
  - consumer: ministry
    purposes: [statistics]
retention:
  years: 10
  at_end: destroy
"""
V2 = V1.replace("version: 1", "version: 2").replace("[statistics]", "[statistics, policy]")


class Trust:
    """A home with a trust whose first custodian has the CLI tests' token (``conftest``: it is
    in the environment of every command), and the police's key made."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.run("keys", "trust-init")
        self.run("keys", "source-init", "--source", "police")
        self.pub = next((self.home / "sources" / "police" / "keys").glob("*.pub.pem"))

    def run(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(app, [*args, "--home", str(self.home)], env={"COLUMNS": "200"})
        assert result.exit_code == code, result.output
        return result

    def file(self, name: str, text: str) -> str:
        path = self.root / name
        path.write_text(text)
        return str(path)

    def register(self, *extra: str, code: int = 0) -> Result:
        return self.run(
            "trust",
            "register",
            "--source",
            "police",
            "--public-key",
            str(self.pub),
            *extra,
            code=code,
        )


@pytest.fixture
def trust(tmp_path: Path) -> Trust:
    return Trust(tmp_path)


def test_submit_records_signed_versions_that_show_history_and_diff_read(trust: Trust) -> None:
    trust.register()
    done = trust.run(
        "agreement", "submit", "--source", "police", "--file", trust.file("v1.yaml", V1)
    )
    assert "agreement v1 of police" in done.output and "signed with key" in done.output
    again = trust.run(
        "agreement", "submit", "--source", "police", "--file", trust.file("v1b.yaml", V1)
    )
    assert "nothing changed" in again.output
    trust.run("agreement", "submit", "--source", "police", "--file", trust.file("v2.yaml", V2))

    history = json.loads(trust.run("agreement", "history", "--source", "police", "--json").stdout)
    assert [(h["version"], h["origin"], h["in_force_now"]) for h in history] == [
        (1, "signed", False),
        (2, "signed", True),
    ]
    shown = json.loads(trust.run("agreement", "show", "--source", "police", "--json").stdout)
    assert shown["version"] == 2 and shown["agreement"]["format"] == FORMAT  # shown as current
    assert shown["agreement"]["retention"] == {"at_end": "destroy", "years": 10, "days": 0}
    original = trust.run("agreement", "show", "--source", "police", "--version", "1", "--original")
    assert original.stdout == V1  # exactly the bytes the source signed
    diff = trust.run("agreement", "diff", "--source", "police", "--from", "1", "--to", "2").stdout
    assert "-version: 1" in diff and "+version: 2" in diff and "+  - policy" in diff
    same = trust.run("agreement", "diff", "--source", "police", "--from", "2", "--to", "2")
    assert "same terms" in same.stdout


def test_bad_documents_and_versions_are_refused_with_their_reasons(trust: Trust) -> None:
    trust.register()
    bad = trust.file("bad.yaml", V1.replace("version: 1", "version: one") + "surprise: 1\n")
    refused = trust.run("agreement", "submit", "--source", "police", "--file", bad, code=2)
    assert "$.version" in refused.output and "surprise" in refused.output
    trust.run("agreement", "submit", "--source", "police", "--file", trust.file("v1.yaml", V1))
    other = trust.file("v1x.yaml", V1.replace("[statistics]", "[research]"))
    conflict = trust.run("agreement", "submit", "--source", "police", "--file", other, code=6)
    assert "different terms" in conflict.output
    nrm = trust.file("nrm.yaml", V1.replace("source_id: police", "source_id: nrm"))
    trust.run("agreement", "submit", "--source", "police", "--file", nrm, code=2)
    # a source whose key the trust has not registered cannot submit
    trust.run("keys", "source-init", "--source", "nrm")
    trust.run("agreement", "submit", "--source", "nrm", "--file", nrm, code=5)


def test_register_submits_the_first_signed_version_and_old_file_homes_still_load(
    trust: Trust,
) -> None:
    trust.register("--agreement", trust.file("v1.yaml", V1))
    history = json.loads(trust.run("agreement", "history", "--source", "police", "--json").stdout)
    assert [(h["version"], h["origin"]) for h in history] == [(1, "signed")]
    trust.register("--agreement", trust.file("v1b.yaml", V1))  # again: nothing changes
    # a home from before agreements were events: a version kept as a file loads beside them
    h = Home(trust.home)
    old = parse_document(V1.replace("police", "nrm").encode())
    trust.run("keys", "source-init", "--source", "nrm")
    pub = next((trust.home / "sources" / "nrm" / "keys").glob("*.pub.pem"))
    wiring.register_source(h, "nrm", pub, old)
    held = wiring.trust_agreements(h)
    assert [v.origin for v in held.versions("nrm")] == ["file"]
    assert [v.origin for v in held.versions("police")] == ["signed"]
    listed = json.loads(trust.run("agreement", "history", "--source", "nrm", "--json").stdout)
    assert [(r["version"], r["origin"], r["key_id"]) for r in listed] == [(1, "file", None)]
    store = open_store(h.store_url())
    try:
        events = [e for _, e in store.read() if isinstance(e, AgreementSubmitted)]
    finally:
        store.close()
    assert [e.source_id for e in events] == ["police"]


def test_the_firewall_lists_its_purposes() -> None:
    done = CliRunner().invoke(app, ["agreement", "purposes", "--json"])
    assert done.exit_code == 0, done.output
    listed = json.loads(done.stdout)
    assert "immigration_enforcement" in listed and "prosecution_of_victims" in listed


def test_retention_dry_run_and_apply_print_counts_only(trust: Trust) -> None:
    trust.register("--agreement", trust.file("v1.yaml", V1))
    dry = json.loads(trust.run("trust", "retention", "--json").stdout)
    assert dry["applied"] is False
    [police] = dry["sources"]
    assert police["source_id"] == "police" and police["term"] == "10 year(s), then destroy"
    assert (police["cases_held"], police["cases_due"], police["action"]) == (0, 0, "nothing due")
    applied = json.loads(trust.run("trust", "retention", "--apply", "--json").stdout)
    assert applied["applied"] is True
    # applying is a custodian's act
    denied = CliRunner().invoke(
        app,
        ["trust", "retention", "--apply", "--home", str(trust.home)],
        env={"TIPTRUST_TOKEN": ""},  # no token
    )
    assert denied.exit_code == 7, denied.output


def test_without_the_sources_key_in_the_home_the_agreement_is_kept_unsigned(
    trust: Trust,
) -> None:
    # the trust's home holds only the source's public key (the agency keeps its private key)
    pem = trust.root / "nrm.pub.pem"
    pem.write_bytes(public_pem(SigningKey.generate("nrm").public.public))
    nrm = trust.file("nrm.yaml", V1.replace("source_id: police", "source_id: nrm"))
    done = trust.run(
        "trust", "register", "--source", "nrm", "--public-key", str(pem), "--agreement", nrm
    )
    assert "registered unsigned" in done.output
    listed = json.loads(trust.run("agreement", "history", "--source", "nrm", "--json").stdout)
    assert [(r["version"], r["origin"]) for r in listed] == [(1, "file")]


def test_retention_apply_destroys_and_makes_it_final(trust: Trust) -> None:
    short = V1.replace("years: 10", "days: 30")
    trust.register("--agreement", trust.file("v1.yaml", short))
    h = Home(trust.home)
    store = open_store(h.store_url())
    try:
        the_vault = wiring.vault(h, store)
        sealed = {}
        for case, age_days in (("old", 40), ("new", 5)):
            record = case_record("police", case, [("v1", "Feminine", 30)])
            record["victims"][0]["identifiers"] = {
                "given_names": "Ana",
                "surnames": "Popescu",
                "date_of_birth": date(1990, 5, 17),
                "documents": [],
                "phone": None,
            }
            minimised, sealed[case] = the_vault.seal_identifiers("police", case, record)
            accepted = RecordAccepted(eid(), "police", case, minimised, sealed[case], 1, 2)
            position = Position("tip.inbound.police", 0, store.last_seq())
            (seq,) = store.append_batch([([accepted], position)], "ingest").seqs
            with store.engine.begin() as conn:  # accepted that many days ago
                conn.execute(
                    update(stored_events)
                    .where(stored_events.c.seq == seq)
                    .values(recorded_at_ms=int(time.time() * 1000) - age_days * 86_400_000)
                )
    finally:
        store.close()
    dry = json.loads(trust.run("trust", "retention", "--json").stdout)
    [police] = dry["sources"]
    assert (police["cases_held"], police["cases_due"], police["victims_due"]) == (2, 1, 1)
    assert "old" not in json.dumps(dry)  # counts, never a case id

    applied = json.loads(trust.run("trust", "retention", "--apply", "--json").stdout)
    assert applied["sources"][0]["action"] == "destroy 1 case(s), 1 victim record(s)"
    store = open_store(h.store_url())
    try:
        kinds = [type(e).__name__ for _, e in store.read()]
        the_vault = wiring.vault(h, store)
        with pytest.raises(KeyShredded):
            the_vault.open_identifiers("police", "old", "v1", sealed["old"]["v1"])
        assert the_vault.open_identifiers("police", "new", "v1", sealed["new"]["v1"])
    finally:
        store.close()
    # linkage followed the stream in order (the disposed record, accepted before its disposal,
    # is linked, then leaves its person at the disposal), erasure shredded its key, and the KEK
    # rotation made that final
    assert kinds[kinds.index("RetentionApplied") :] == [
        "RetentionApplied",
        "DisposalRequested",
        "RecordLinked",
        "RecordLinked",
        "RecordUnlinked",
        "PersonKeysShredded",
        "KekRotated",
    ]
    again = json.loads(trust.run("trust", "retention", "--json").stdout)
    assert again["sources"][0]["cases_due"] == 0


def test_only_the_sources_steward_or_a_custodian_submits(trust: Trust) -> None:
    trust.register()
    v1 = trust.file("v1.yaml", V1)

    def steward(name: str, source: str) -> str:
        added = trust.run(
            "principal",
            "add",
            "--role",
            "data_steward",
            "--name",
            name,
            "--source",
            source,
            "--json",
        )
        token: str = json.loads(added.stdout)["token"]
        return token

    def submit_as(token: str) -> int:
        done = CliRunner().invoke(
            app,
            ["agreement", "submit", "--source", "police", "--file", v1, "--home", str(trust.home)],
            env={"TIPTRUST_TOKEN": token},
        )
        return done.exit_code

    assert submit_as("") == 7
    assert submit_as(steward("nrm-steward", "nrm")) == 7  # another source's steward
    assert submit_as(steward("police-steward", "police")) == 0
