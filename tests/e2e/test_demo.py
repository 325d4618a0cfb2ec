"""The README's first command: the whole slice, on the embedded log and over the Kafka protocol."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from infra.broker import TansuBroker

from .conftest import RunCli, last_json

EXPECTED_REJECTIONS = {
    "bad_signature": 1,
    "duplicate_event": 1,
    "unknown_source": 1,
    "unknown_trust_key": 1,
    "invalid_record": 1,
}


def _check_summary(summary: dict, tmp_path: Path) -> None:
    assert summary["published"] > 500
    # every genuine event accepted exactly once; each bad message rejected with its own reason
    assert summary["accepted"] == summary["published"]
    assert summary["rejected"] == EXPECTED_REJECTIONS
    assert summary["rows_rejected_at_source"] >= 5
    assert summary["persons"] > 250
    assert summary["releases"] == 3
    # victims per year and sex: every cell, margin and the total, protected and audited
    by_year = list(
        csv.DictReader((Path(summary["out_dir"]) / "victims_by_year_sex" / "000001.csv").open())
    )
    grand = [r for r in by_year if r["year"] == "Total" and r["sex"] == "Total"]
    assert len(grand) == 1 and int(grand[0]["value"]) == summary["persons"]
    assert any(r["year"] != "Total" and r["sex"] == "Total" and r["value"] for r in by_year)
    out = Path(summary["out_dir"]) / "victims_by_sex_age_form"
    rows = list(csv.DictReader((out / "000001.csv").open()))
    published = [r for r in rows if r["suppressed"] == "false"]
    assert published and all(int(r["value"]) >= 10 for r in published)
    assert all(r["value"] == "" for r in rows if r["suppressed"] == "true")
    # with every margin: the grand total once, and the one-way margins (victims per year …)
    dims = ("year", "sex", "age_group", "form")
    total = [r for r in rows if all(r[d] == "Total" for d in dims)]
    assert len(total) == 1 and int(total[0]["value"]) == summary["persons"]
    per_year = [r for r in rows if r["year"] != "Total" and all(r[d] == "Total" for d in dims[1:])]
    assert per_year
    release = json.loads((out / "000001.json").read_text())
    assert release["k"] == 10 and "not estimates of prevalence" in release["caveat"]
    assert release["format"] == 2 and release["labels"]["sex"]
    assert "below 10 persons" in (out / "README.txt").read_text()
    # how many no agency saw: the estimate with its interval, beside the persons detected
    estimate = json.loads(
        (Path(summary["out_dir"]) / "prevalence_estimate" / "000001.json").read_text()
    )
    value = {a["key"][0]: a["value"] for a in estimate["aggregates"] if a["key"]}
    assert value["observed"] == summary["persons"]
    assert value["observed"] <= value["ci_low"] <= value["estimate"] <= value["ci_high"]


def test_demo_on_the_embedded_log(cli: RunCli, tmp_path: Path) -> None:
    summary = last_json(cli("demo", "--json").stdout)
    assert summary["log"].startswith("sqlite:///")
    _check_summary(summary, tmp_path)


def test_demo_says_every_reason_then_receipts_and_rebuild_agree(
    cli: RunCli, tmp_path: Path
) -> None:
    """The human output names every refusal; the agency's receipts say the same, and a rebuild
    of the demo's store gives identical projections (one smaller demo for the three)."""
    text = cli("demo", "--persons", "300").stdout
    for reason in EXPECTED_REJECTIONS:
        assert reason in text
    assert "ministry files in" in text
    demo_home = str(tmp_path / "home" / "demo")
    lines = cli("receipts", "--source", "police", "--json", "--home", demo_home).stdout.splitlines()
    receipts = [json.loads(line) for line in lines if line.startswith("{")]
    reasons = sorted(r["reason"] for r in receipts)
    # the police topic got the tampered, duplicate, wrong-key and invalid messages
    assert reasons == ["bad_signature", "duplicate_event", "invalid_record", "unknown_trust_key"]
    for r in receipts:
        assert r["topic"] == "tip.inbound.police" and r["offset"] >= 0 and r["detail"]
    invalid = next(r for r in receipts if r["reason"] == "invalid_record")
    assert invalid["field_path"] == "$.victims[0].age_at_identification"
    rogue = cli("receipts", "--source", "rogue", "--json", "--home", demo_home).stdout
    assert "unknown_source" in rogue
    assert "identical" in cli("trust", "rebuild", "--home", demo_home).stdout


@pytest.mark.kafka
def test_demo_over_kafka(cli: RunCli, tmp_path: Path, own_tansu: TansuBroker) -> None:
    tansu = own_tansu
    # the protocol path is what this adds: a smaller population than the default demo's
    summary = last_json(cli("demo", "--json", "--persons", "1000", "--log", tansu.url).stdout)
    assert summary["log"] == tansu.url
    _check_summary(summary, tmp_path)


@pytest.mark.fresh_interpreters  # two processes with their own hash seeds, as two real runs
def test_the_same_seed_gives_the_same_persons_and_reviews(cli: RunCli) -> None:
    """A demo run is reproducible: the agencies' message-key secrets come from the seed, so the
    trust stores the records in the same order and links them the same way."""
    runs = [last_json(cli("demo", "--json", "--persons", "150").stdout) for _ in range(2)]
    assert runs[0]["persons"] == runs[1]["persons"] > 0
    assert runs[0]["reviews_open"] == runs[1]["reviews_open"]
