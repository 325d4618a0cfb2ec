"""The one-command demo: agencies publish, the trust ingests and releases, a ministry subscribes.

Everything runs in this process, on the embedded log by default (no server), in a fresh folder
``HOME/demo``: keys, registrations with agreements, a simulated population and five agencies'
exports (with a few deliberately broken rows), publishing, a handful of bad messages (a tampered
envelope, an unregistered source, a wrong trust key, a schema-invalid record, a duplicate), the
trust until caught up, one signed release, and a ministry that verifies and writes it.

The demo's trust has principals as a real one has (``trust.stewardship.principals``): a
custodian, a data steward per agency, the ministry as a consumer and a trustee, each with a token
the demo keeps in memory only. The custodian asks for the ministry's subscriptions and the
trustee approves them (the two-person rule of ``trust.stewardship.release_review``). The custodian's token is in the summary (``custodian_token``), shown once,
so the operator can go on with `tiptrust link review …` in the demo's home.
"""

from __future__ import annotations

import csv
import hmac
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers.subscriber import Subscriber
from consumers.writers import ReleaseWriter
from producers.simulate import adversary, simulate
from producers.simulate.faults import bad_rows
from producers.workflow import publish_export, read_export
from tiptrust import wiring
from tiptrust.home import Home
from transport import display_url, open_log, topics
from trust.linkage.review import open_reviews
from trust.release.counts import counted_persons, counted_records
from trust.stewardship.agreement import load_agreement
from trust.stewardship.principals import Role, add_principal, bootstrap_custodian, find
from trust.store.eventstore import open_store

CONSUMER = "ministry"
TRUSTEE = "trustee"
STREAM = "victims_by_sex_age_form"
ESTIMATE = "prevalence_estimate"
#: The streams the ministry subscribes to: the detailed table, victims per year and sex with every
#: margin and the total (secondary suppression, LP audit), and the multiple-systems estimate of
#: how many victims no agency saw (with its interval and assumptions).
STREAMS = ("victims_by_year_sex", STREAM, ESTIMATE)
PURPOSE = "statistics"
BROKEN_SOURCE = "ngo_haven"
BROKEN_ROWS = 5


@dataclass
class DemoSummary:
    published: int = 0
    rows_rejected_at_source: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    persons: int = 0  # after linkage
    victim_records: int = 0  # counted victim records (what was counted before linkage)
    true_persons: int = 0  # the simulator's truth: distinct persons in the exports
    reviews_open: int = 0  # records linkage left to an operator
    releases: int = 0
    release_files: list[str] = field(default_factory=list)
    out_dir: str = ""
    log_url: str = ""
    seconds: float = 0.0
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)
    bad_messages: list[dict[str, str]] = field(default_factory=list)
    principals: list[str] = field(default_factory=list)  # "name (role[ of source])"
    custodian_token: str = field(default="", repr=False)  # shown once, kept nowhere

    def to_json(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "rows_rejected_at_source": self.rows_rejected_at_source,
            "accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())),
            "persons": self.persons,
            "victim_records": self.victim_records,
            "true_persons": self.true_persons,
            "reviews_open": self.reviews_open,
            "releases": self.releases,
            "release_files": self.release_files,
            "out_dir": self.out_dir,
            "log": display_url(self.log_url),
            "seconds": round(self.seconds, 2),
            "by_source": self.by_source,
            "bad_messages": self.bad_messages,
            "principals": self.principals,
            "custodian_token": self.custodian_token,
        }


Step = Callable[[str], None]


def _demo_message_key(home: Home, source: str, seed: int) -> None:
    """The demo agency's message-key secret, derived from the demo's seed (a real agency's is
    random, made at its first publish). Message keys choose each case's log partition, and so
    the order in which the trust stores the records; with the secret fixed by the seed, the
    same seed stores the same records in the same order and links them into the same persons
    and reviews: a demo run is reproducible."""
    path = wiring.message_key_path(home, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = hmac.digest(f"tiptrust-demo/{seed}".encode(), source.encode(), "sha256")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secret)
    finally:
        os.close(fd)


def run_demo(
    home_dir: Path,
    *,
    log_url: str | None = None,
    persons: int = 2000,
    seed: int = 7,
    step: Step = lambda _: None,
    custodian_token: str | None = None,
) -> DemoSummary:
    """Run the demo in ``home_dir/demo``; ``custodian_token``: a tt1 token of the caller's for the
    demo trust's custodian (default: a new one, returned in the summary)."""
    started = time.monotonic()
    root = home_dir / "demo"
    if root.exists():
        shutil.rmtree(root)
    home = Home(root)
    summary = DemoSummary(out_dir=str(root / "out"))
    url = home.log_url(log_url)
    summary.log_url = url

    step("keys: trust and agencies")
    wiring.trust_init(home)
    sim_dir = root / "agencies"
    sim = simulate(seed, persons, sim_dir)
    with (sim_dir / "truth.csv").open(encoding="utf-8", newline="") as f:
        summary.true_persons = len({row["true_person_id"] for row in csv.DictReader(f)})
    for source in sorted(sim.rows):
        key = wiring.source_init(home, source)
        _demo_message_key(home, source, seed)
        wiring.register_source(
            home,
            source,
            home.source_keys(source) / f"{key.key_id}.ed25519.pub.pem",
            load_agreement(sim_dir / source / "agreement.yaml"),
        )

    step("principals: a custodian, each agency's data steward, the ministry, a trustee")
    store = open_store(home.store_url())
    try:
        custodian = bootstrap_custodian(store, "operator", custodian_token)
        assert custodian is not None  # a fresh folder
        issued = [custodian]
        for source in sorted(sim.rows):
            steward = f"{source}-steward"
            issued.append(
                add_principal(store, steward, Role.DATA_STEWARD, source=source, added_by="operator")
            )
        issued.append(add_principal(store, CONSUMER, Role.CONSUMER, added_by="operator"))
        issued.append(add_principal(store, TRUSTEE, Role.TRUSTEE, added_by="operator"))
    finally:
        store.close()
    summary.principals = [t.principal.describe() for t in issued]
    summary.custodian_token = custodian.token

    step(f"{len(sim.rows)} agencies publish their exports")
    broken = sim_dir / BROKEN_SOURCE / "records.csv"
    bad_rows(broken, broken, BROKEN_ROWS, seed)
    for source in sorted(sim.rows):
        export = read_export(
            source, sim_dir / source / "records.csv", sim_dir / source / "mapping.yaml"
        )
        report = publish_export(wiring.source_setup(home, source), url, export)
        rows = export.rows_read
        summary.published += report.published
        summary.rows_rejected_at_source += len(report.rejected_rows)
        summary.by_source[source] = {
            "rows": rows,
            "published_events": report.published,
            "rows_rejected": len(report.rejected_rows),
        }

    step("a few bad messages arrive too")
    trust_pub = wiring.active_trust_public(home)
    police = wiring.source_signing_key(home, "police")
    with open_log(url) as log:
        police_topic = topics.inbound("police")
        genuine = log.read_all(police_topic)[:2]
        bad = [
            adversary.tampered(genuine[0].value, police_topic),
            adversary.duplicate(genuine[1].value, police_topic),
            adversary.unknown_source(trust_pub),
            adversary.wrong_trust_key(police, police_topic),
            adversary.invalid_record(police, trust_pub, police_topic),
        ]
        for m in bad:
            log.append(m.topic, m.value)
            summary.bad_messages.append({"what": m.what, "expected_reason": m.expected_reason})
        log.flush()

    step("the trust verifies, decrypts, stores and releases")
    with open_log(url) as log:
        store = open_store(home.store_url())
        trustee = find(store, TRUSTEE)
        assert trustee is not None
        for stream in STREAMS:  # the operator asks, a trustee approves (two-person rule)
            wiring.add_subscription(store, CONSUMER, stream, PURPOSE, custodian.principal.name)
            wiring.approve_subscription(store, CONSUMER, stream, trustee)
        runner = wiring.build_trust_runner(home, log, store)
        run = runner.run(until_caught_up=True)
        runner.worker.close()
        summary.accepted = run.ingest.accepted
        summary.rejected = Counter(run.ingest.rejected)
        summary.releases = len(run.releases)
        summary.persons = len(counted_persons(store))
        summary.victim_records = counted_records(store)
        summary.reviews_open = len(open_reviews(store))
        store.close()

    step("the ministry receives the signed releases")
    with open_log(url) as log:
        keys = wiring.release_public_keys(home.release_keys)
        for stream in STREAMS:
            writer = ReleaseWriter(root / "out", charts=True)
            with Subscriber(log, stream, CONSUMER, keys, writer) as sub:
                got = sub.run_once()
            # the tables and the folder's README; the charts (PNG and SVG) by their folder
            shown = [p for p in got.written if p.suffix == ".csv" or p.name == "README.txt"]
            charts = sorted({p.parent for p in got.written if p.suffix in (".png", ".svg")})
            summary.release_files += [str(p) for p in shown] + [f"{c}/" for c in charts]
    summary.seconds = time.monotonic() - started
    return summary
