"""A source whose agreement keeps no envelope on the log (format 6, envelope_retention_days: 0):
once `tiptrust trust run` has taken its export in, the inbound log holds nothing its key could
open, and the audit log says what was deleted."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from transport import open_log, topics

from .conftest import RunCli, last_json, publish_args
from .test_publish import _setup


def test_envelopes_taken_in_leave_the_log(cli: RunCli, tmp_path: Path) -> None:
    sim = _setup(cli, tmp_path, persons=120, sources=("nrm",))
    agreement = yaml.safe_load((sim / "nrm" / "agreement.yaml").read_text())
    agreement.update(format=6, version=2, envelope_retention_days=0)
    (tmp_path / "v2.yaml").write_text(yaml.safe_dump(agreement))
    cli("agreement", "submit", "--source", "nrm", "--file", str(tmp_path / "v2.yaml"))
    sent = last_json(cli(*publish_args(sim, "nrm"), "--json").stdout)
    assert sent["events_published"] > 0
    log_url = f"sqlite:///{tmp_path / 'home' / 'log.db'}"
    with open_log(log_url) as log:
        assert len(log.read_all(topics.inbound("nrm"))) == sent["events_published"]

    run = last_json(cli("trust", "run", "--json").stdout)
    assert run["accepted"] == sent["events_published"]
    with open_log(log_url) as log:
        assert log.read_all(topics.inbound("nrm")) == []
    audit = [json.loads(line) for line in cli("audit", "export").stdout.splitlines()]
    deleted = [e["facts"] for e in audit if e.get("kind") == "InboundDeleted"]
    assert sum(d["before_offset"] for d in deleted) == sent["events_published"]  # every partition
