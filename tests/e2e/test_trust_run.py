"""`tiptrust trust run` as an operator runs it: --follow says what it ingests, rejects and
releases, stops cleanly on SIGTERM, and a store that fails stops it with a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from .conftest import TIPTRUST, RunCli, last_json, publish_args, subscribe
from .test_publish import _setup

STREAM = "victims_by_year_sex"  # a two-way stream: the four-way one costs seconds per release


def test_follow_reports_and_stops_on_sigterm(cli: RunCli, tmp_path: Path) -> None:
    sim = _setup(cli, tmp_path, persons=300, sources=("nrm", "ngo_haven"))
    cli(*publish_args(sim, "nrm"))
    subscribe(cli)
    env = {
        **os.environ,
        "TIPTRUST_HOME": str(tmp_path / "home"),
        "COLUMNS": "200",
        "TIPTRUST_LOGGING_LEVEL": "info",
    }
    proc = subprocess.Popen(
        [*TIPTRUST, "trust", "run", "--follow", "--release-every", "0.2", "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)
    cli(*publish_args(sim, "ngo_haven"))  # more arrives while it follows
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    summary = last_json(out)
    assert summary["accepted"] > 0 and summary["releases"]
    assert "ingested" in err and "accepted" in err
    assert f"released ministry/{STREAM} #1" in err
    assert "release.recorded" in err  # the library's own event codes, through the redaction filter
    names = [n for n in (sim / "nrm" / "records.csv").read_text().split(",") if len(n) >= 6]
    assert not any(n in err for n in names[:200])


def test_a_failing_store_stops_the_trust_with_a_clear_error(cli: RunCli, tmp_path: Path) -> None:
    _setup(cli, tmp_path, persons=50, sources=("nrm",))
    failed = cli(
        "trust", "run", "--store", "postgresql+psycopg://nobody@127.0.0.1:1/none", check=False
    )
    assert failed.returncode == 4
    assert "the event store failed" in failed.stderr and "nothing was lost" in failed.stderr
    assert "Traceback" not in failed.stderr
