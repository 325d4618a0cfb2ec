"""A ``prevalence_estimate`` release at the consumer: verified off the log and written like every
release, its files saying what an estimate is (no "suppressed" where there is no estimate), and
the annex 7 chart drawn per release and over every release held, never without the interval."""

from __future__ import annotations

import json
import re
from pathlib import Path

from consumers.estimate_chart import SERIES, point_from_release
from consumers.subscriber import Subscriber
from consumers.writers import ReleaseWriter, is_estimate, readme_text, release_metadata
from schemas.release import Release
from transport import EventLog, topics
from trust.release.publish import ESTIMATE_ASSUMPTIONS, EstimateTable, build_estimate_release
from trust.release.streams import PREVALENCE_ESTIMATE

from .conftest import KEYS, T0, signed

DAY_MS = 86_400_000


def estimate_release(
    sequence: int, observed: int = 73, estimate: float | None = 121.42, high: float | None = 170.9
) -> Release:
    table = EstimateTable(
        stream=PREVALENCE_ESTIMATE.name,
        observed=observed,
        estimate=estimate,
        ci_low=None if estimate is None else 98.04,
        ci_high=None if estimate is None else high,
        k=10,
        period_start=2023,
        period_end=2024,
        parameters={
            "estimate_exists": "true" if estimate is not None else "false",
            "lists": "ngo, nrm, police",
            "interval_method": "profile",
            "interval_level": "0.95",
            **(
                {}
                if estimate is not None
                else {
                    "no_estimate_reason_code": "lists_disjoint",
                    "no_estimate_reason": "no person is on two lists",
                }
            ),
        },
    )
    return build_estimate_release(
        PREVALENCE_ESTIMATE,
        table,
        counting_rule="Distinct persons after record linkage.",
        sequence=sequence,
        sources=("ngo", "nrm", "police"),
        issued_at_ms=T0 + sequence * DAY_MS,
        release_id=f"r{sequence}",
        consumer="ministry",
        purpose="statistics",
    )


def publish(log: EventLog, *raws: bytes) -> None:
    for raw in raws:
        log.append(topics.release("ministry", PREVALENCE_ESTIMATE.name), raw)
    log.flush()


def test_the_consumer_verifies_and_writes_the_estimate_with_its_charts(
    log: EventLog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    releases = [estimate_release(1), estimate_release(2, observed=90, estimate=None)]
    publish(log, *(signed(r) for r in releases))
    writer = ReleaseWriter(out, charts=True)
    sub = Subscriber(log, PREVALENCE_ESTIMATE.name, "ministry", KEYS, writer)
    report = sub.run_once(timeout=2.0)
    assert [r.sequence for r in report.releases] == [1, 2] and not report.refused
    folder = out / PREVALENCE_ESTIMATE.name
    rows = (folder / "000001.csv").read_text().splitlines()
    assert rows[0] == "measure,value,exact,suppressed"
    assert rows[1:] == [
        "observed,73,true,false",
        "estimate,121.4,false,false",
        "ci_low,98.0,false,false",
        "ci_high,170.9,false,false",
    ]
    described = json.loads((folder / "000002.metadata.json").read_text())
    assert described["estimate"]["exists"] is False
    assert described["estimate"]["reason"] == "no person is on two lists"
    assert set(described["estimate"]["assumptions"]) == {
        k.removeprefix("assumption_") for k in ESTIMATE_ASSUMPTIONS
    }
    assert "no estimate" in described["columns"]["suppressed"]
    charts = folder / "charts"
    for name in ("000001.estimate", "000002.estimate", SERIES):
        for fmt in ("png", "svg"):
            assert (charts / f"{name}.{fmt}").stat().st_size > 1000
    svg = (charts / f"{SERIES}.svg").read_text()
    assert 'id="interval-band' in svg and "no estimate" in svg
    assert "Closed population" in svg  # the assumptions are on the chart


def test_the_readme_states_the_assumptions_not_suppression() -> None:
    release = estimate_release(1)
    assert is_estimate(release)
    text = readme_text(release)
    assert "An estimate and its interval" in text and "Suppressed numbers" not in text
    for assumption in ESTIMATE_ASSUMPTIONS.values():
        assert assumption in text
    assert release_metadata(release)["method"]["name"].startswith("multiple-systems")


def test_a_point_keeps_the_interval_beside_the_estimate() -> None:
    point = point_from_release(estimate_release(3, high=None))
    assert point.exists and point.ci_high is None  # no upper limit: drawn to the top, marked
    assert point.observed <= (point.ci_low or 0) <= (point.estimate or 0)
    assert re.match(r"\d{4}-\d\d-\d\d\n#3", point.label)
