"""The policy point as an operator, an agency and a ministry meet it through the CLI: deny by
default, a fixable refusal re-sent with `--resend`, subscriptions only agreements allow, the
quarantine, and names that could escape a folder refused at the door."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.receipt import RECEIPT_SCHEMA, Receipt
from transport import open_log

from .conftest import RunCli, last_json, publish_args, subscribe
from .test_publish import _setup

STREAM = "victims_by_year_sex"  # a two-way stream: the four-way one costs seconds per release


def test_deny_by_default_then_resend_after_the_agreement(cli: RunCli, tmp_path: Path) -> None:
    sim = _setup(cli, tmp_path, persons=150, sources=("police",), agreements=False)
    registered = cli(
        "trust", "register", "--source", "police", "--agreement", "missing.yaml", check=False
    )
    assert registered.returncode != 0
    published = last_json(cli(*publish_args(sim, "police", "--json")).stdout)
    sent = published["events_published"]
    assert sent > 10

    first = last_json(cli("trust", "run", "--json").stdout)
    assert first["accepted"] == 0 and first["rejected"] == {"no_agreement": sent}
    receipts = cli("receipts", "--source", "police", "--json").stdout
    assert receipts.count('"no_agreement"') == sent

    out = cli(
        "trust",
        "register",
        "--source",
        "police",
        "--agreement",
        str(sim / "police" / "agreement.yaml"),
    ).stdout
    assert "agreement v1 of police" in out and "ministry (statistics)" in out

    # without --resend the outbox knows these were sent: nothing goes
    again = last_json(cli(*publish_args(sim, "police", "--json")).stdout)
    assert again["events_published"] == 0
    resent = last_json(cli(*publish_args(sim, "police", "--json", "--resend")).stdout)
    assert resent["events_republished"] == sent
    second = last_json(cli("trust", "run", "--json").stdout)
    assert second["accepted"] == sent and second["rejected"] == {}


def test_a_key_without_an_agreement_is_registered_and_says_so(cli: RunCli, tmp_path: Path) -> None:
    cli("keys", "trust-init")
    cli("keys", "source-init", "--source", "police")
    pub = next((tmp_path / "home" / "sources" / "police" / "keys").glob("*.pub.pem"))
    out = cli("trust", "register", "--source", "police", "--public-key", str(pub)).stdout
    assert "nothing it sends is accepted" in out


def test_only_subscriptions_an_agreement_allows_receive_releases(
    cli: RunCli, tmp_path: Path
) -> None:
    sim = _setup(cli, tmp_path, persons=400, sources=("police", "nrm"))
    for s in ("police", "nrm"):
        cli(*publish_args(sim, s))
    for consumer in ("ministry", "journalist"):
        subscribe(cli, consumer)
    listed = json.loads(cli("trust", "subscription", "list", "--json").stdout)
    assert {s["consumer"] for s in listed} == {"ministry", "journalist"}

    run = last_json(cli("trust", "run", "--json").stdout)
    assert run["releases"] == [f"{STREAM}#1"]

    ministry = cli("subscribe", "--consumer", "ministry", "--stream", STREAM, "--out", "m")
    assert "ministry: 1 received" in ministry.stdout
    journalist = cli(
        "subscribe", "--consumer", "journalist", "--stream", STREAM, "--out", "j", check=False
    )
    assert journalist.returncode == 5 and "nothing to receive" in journalist.stderr
    assert not list((tmp_path / "j").rglob("*.csv"))
    nobody = cli("subscribe", "--consumer", "nobody", "--stream", STREAM, "--out", "n", check=False)
    assert nobody.returncode != 0
    assert "no such subscription" in nobody.stderr

    # a misspelled stream is refused when subscribing, not silently empty
    bad = cli(
        "trust",
        "subscription",
        "add",
        "--consumer",
        "ministry",
        "--stream",
        "victims",
        "--purpose",
        "statistics",
        check=False,
    )
    assert bad.returncode != 0 and "no release stream" in bad.stderr


def test_names_that_are_not_names_are_refused(cli: RunCli, tmp_path: Path) -> None:
    cli("keys", "trust-init")
    for args in (
        ["keys", "source-init", "--source", "../../x"],
        ["keys", "source-init", "--source", "Police"],
        [
            "trust",
            "subscription",
            "add",
            "--consumer",
            "../m",
            "--stream",
            STREAM,
            "--purpose",
            "statistics",
        ],
        ["receipts", "--source", "../../etc"],
    ):
        proc = cli(*args, check=False)
        assert proc.returncode == 2, args
    assert not (tmp_path / "x").exists() and not (tmp_path / "home" / "x").exists()


def test_the_quarantine_lists_refusals_without_content(cli: RunCli, tmp_path: Path) -> None:
    sim = _setup(cli, tmp_path, persons=150, sources=("police",), agreements=False)
    cli(*publish_args(sim, "police"))
    cli("trust", "run", "--json")
    entries = json.loads(cli("trust", "quarantine", "--json", "--limit", "5").stdout)
    assert len(entries) == 5
    assert {e["reason"] for e in entries} == {"no_agreement"}
    assert all(e["topic"] == "tip.inbound.police" and e["offset"] >= 0 for e in entries)
    # a receipt anyone could write to the topic is not shown as the trust's
    forged = Receipt(
        "police", None, "duplicate_event", None, "forged", "tip.inbound.police", 0, 0, 1
    )
    with open_log(f"sqlite:///{tmp_path / 'home' / 'log.db'}") as log:
        log.append("tip.rejected.police", RECEIPT_SCHEMA.encode(forged.to_avro()))
        log.flush()
    shown = cli("receipts", "--source", "police", "--json")
    assert '"forged"' not in shown.stdout and shown.stdout.count('"no_agreement"') > 5
    assert "1 message(s) on tip.rejected.police were not issued by the trust" in shown.stderr
    assert set(entries[0]) == {
        "seq",
        "source_id",
        "reason",
        "field_path",
        "topic",
        "partition",
        "offset",
        "recorded_at_ms",
    }
