"""`tiptrust audit verify|proof|export`: the log is caught up, verified, proved and exported, and
`scripts/verify_audit_proof.py` — which imports nothing of the trust's code — checks the proofs
and the export on its own, with the trust's public release key."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

from tiptrust import wiring
from tiptrust.cli import app
from tiptrust.home import Home
from trust.store.events import SubscriptionAdded
from trust.store.eventstore import Position, open_store

from ...trust.store.builders import accepted, eid, rejected, release

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "verify_audit_proof.py"
runner = CliRunner()


def _cli(home: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--home", str(home)])


def _append(home: Path, first_offset: int) -> None:
    """Two inbound decisions and two of the operator's."""
    store = open_store(Home(home).store_url(None))
    topic = "tip.inbound.police"
    try:
        store.append(
            [accepted("police", f"c{first_offset}")], Position(topic, 0, first_offset), "i"
        )
        store.append(
            [rejected("police", offset=first_offset + 1)], Position(topic, 0, first_offset + 1), "i"
        )
        store.append([SubscriptionAdded(eid(), "unodc", "sdg-16-2-2", "statistics", 1)], None, "o")
        store.append([release(sequence=first_offset + 1)], None, "o")
    finally:
        store.close()


def _run_script(*args: str) -> tuple[int, dict[str, Any]]:
    """Run the standalone verifier in a process of its own, as a source would."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )
    return proc.returncode, json.loads(proc.stdout)


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_audit_proof", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STANDALONE = _load_script()


def _check(*args: str) -> tuple[int, dict[str, Any]]:
    """The standalone verifier's exit code and verdict (run in this process: it is quicker)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = STANDALONE.main(list(args))
    return code, json.loads(printed.getvalue())


@pytest.fixture(scope="module")
def trust_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trust with two checkpoints (4 and 8 entries) and its public release key exported."""
    home = tmp_path_factory.mktemp("audit") / "home"
    wiring.trust_init(Home(home))  # keys only: no custodian's event among the counted entries
    assert (
        _cli(
            home, "keys", "export-release", "--out", str(home.parent / "release.pub.pem")
        ).exit_code
        == 0
    )
    _append(home, 0)
    assert _cli(home, "audit", "verify").exit_code == 0  # catches up: checkpoint 4
    _append(home, 2)
    return home


def test_verify_catches_up_and_checks_every_signature(trust_home: Path) -> None:
    result = _cli(trust_home, "audit", "verify", "--json")
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    assert verdict["ok"] and verdict["entries"] == 8
    assert verdict["checkpoints"] == verdict["signed_checkpoints"] == 2


def test_an_inclusion_proof_verifies_with_the_standalone_script(
    trust_home: Path, tmp_path: Path
) -> None:
    result = _cli(trust_home, "audit", "proof", "--entry", "5")
    assert result.exit_code == 0, result.output
    proof = json.loads(result.output)
    assert {"leaf_index", "tree_size", "root", "path"} <= set(proof)
    assert (proof["leaf_index"], proof["tree_size"]) == (5, 8)
    path = tmp_path / "proof.json"
    path.write_text(result.output)
    key = str(trust_home.parent / "release.pub.pem")

    code, verdict = _run_script(str(path), "--root", proof["root"], "--public-key", key)
    assert code == 0 and verdict == {"verified": True, "kind": "inclusion", "problems": []}

    edited = {**proof, "entry": proof["entry"].replace('"police"', '"court"')}
    path.write_text(json.dumps(edited))
    code, verdict = _check(str(path), "--public-key", key)
    assert code == 1 and "the path does not lead from the entry to the root" in verdict["problems"]


def test_a_consistency_proof_between_two_checkpoints_verifies(
    trust_home: Path, tmp_path: Path
) -> None:
    result = _cli(trust_home, "audit", "proof", "--from", "4", "--to", "8")
    assert result.exit_code == 0, result.output
    proof = json.loads(result.output)
    path = tmp_path / "consistency.json"
    path.write_text(result.output)
    key = str(trust_home.parent / "release.pub.pem")
    code, verdict = _check(str(path), "--from-root", proof["from_root"], "--public-key", key)
    assert code == 0, verdict
    code, verdict = _check(str(path), "--from-root", "00" * 32)
    assert code == 1


def test_export_verifies_on_its_own_and_an_edit_does_not(trust_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    result = _cli(trust_home, "audit", "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 9 and json.loads(lines[-1])["checkpoint"]["tree_size"] == 8
    key = str(trust_home.parent / "release.pub.pem")
    assert _check("--export", str(out), "--public-key", key)[0] == 0
    lines[2], lines[3] = lines[3], lines[2]  # reordered
    out.write_text("\n".join(lines) + "\n")
    code, verdict = _check("--export", str(out))
    assert code == 1 and "line 3 is not entry 2" in verdict["problems"]


def test_verify_reports_an_edited_entry(trust_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(trust_home, home)
    with sqlite3.connect(home / "trust" / "store.db") as db:
        db.execute("UPDATE audit_entries SET entry = replace(entry, 'unodc', 'other')")
    result = _cli(home, "audit", "verify", "--no-catch-up")
    assert result.exit_code == 6
    assert "broken_chain" in result.output and "checkpoint_mismatch" in result.output
    refused = _cli(home, "audit", "proof", "--entry", "0", "--no-catch-up")
    assert refused.exit_code == 6 and "audit verify" in refused.output


def test_misuse_is_a_usage_error(trust_home: Path) -> None:
    assert _cli(trust_home, "audit", "proof").exit_code == 2
    assert _cli(trust_home, "audit", "proof", "--from", "4").exit_code == 2
    missing = _cli(trust_home, "audit", "proof", "--entry", "0", "--size", "5")
    assert missing.exit_code == 2 and "nearest" in missing.output


def test_without_a_trust_catching_up_is_not_set_up(tmp_path: Path) -> None:
    result = _cli(tmp_path / "none", "audit", "verify")
    assert result.exit_code == 5 and "trust-init" in result.output
