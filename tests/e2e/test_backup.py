"""`tiptrust trust backup` / `restore` as a custodian uses them: a running trust's store copied,
restored into an empty store that goes on, and every wrong restore refused with the target left
empty — another principal's token, a store that holds data, a backup from before a KEK
rotation."""

from __future__ import annotations

import json
from pathlib import Path

from tiptrust.cli.common import Exit

from .conftest import RunCli, publish_args, subscribe
from .test_publish import _setup


def _status(cli: RunCli, store: str | None = None) -> dict[str, object]:
    args = ("trust", "status") if store is None else ("trust", "status", "--store", store)
    out = cli(*args).stdout
    return {"lines": [line for line in out.splitlines() if line.strip()]}


def _events(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "stored_events" not in names:
            return 0
        return int(conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0])


def test_backup_and_restore_through_the_cli(cli: RunCli, tmp_path: Path) -> None:
    sim = _setup(cli, tmp_path, persons=150, sources=("nrm",))
    cli(*publish_args(sim, "nrm"))
    subscribe(cli)
    cli("trust", "run")
    home = tmp_path / "home"

    denied = cli("trust", "backup", "--out", "x.backup", check=False, env={"TIPTRUST_TOKEN": ""})
    assert denied.returncode == Exit.DENIED and not (tmp_path / "x.backup").exists()

    made = json.loads(cli("trust", "backup", "--out", "b1.backup", "--json").stdout)
    assert made["last_seq"] > 0 and (tmp_path / "b1.backup").is_file()
    again = cli("trust", "backup", "--out", "b1.backup", check=False)
    assert again.returncode == Exit.USAGE and "exists" in again.stdout + again.stderr

    # into the home's own store, which holds the trust: refused, nothing touched
    before = _events(home / "trust" / "store.db")
    busy = cli("trust", "restore", "--from", "b1.backup", check=False)
    assert busy.returncode == Exit.USAGE and "target_not_empty" in busy.stdout + busy.stderr
    assert _events(home / "trust" / "store.db") == before

    # a token that is no custodian of the backed-up trust: the target stays empty
    other = tmp_path / "other.db"
    stranger = "tt1.0123456789abcdef." + "s" * 43
    refused = cli(
        "trust", "restore", "--from", "b1.backup", "--store", f"sqlite:///{other}",
        check=False, env={"TIPTRUST_TOKEN": stranger},
    )  # fmt: skip
    assert refused.returncode == Exit.DENIED and _events(other) == 0

    restored = tmp_path / "restored.db"
    done = cli("trust", "restore", "--from", "b1.backup", "--store", f"sqlite:///{restored}")
    assert f"restored {made['tables']['stored_events']['rows']} events" in done.stdout
    assert _status(cli, f"sqlite:///{restored}") == _status(cli)
    # the restored trust goes on: it runs over the same log without taking anything twice
    cli("trust", "run", "--store", f"sqlite:///{restored}")
    assert _status(cli, f"sqlite:///{restored}") == _status(cli)

    # after a KEK rotation the old backup opens under no key the trust holds: refused
    cli("keys", "rotate-kek")
    late = tmp_path / "late.db"
    stale = cli("trust", "restore", "--from", "b1.backup", "--store", f"sqlite:///{late}",
                check=False)  # fmt: skip
    assert stale.returncode == Exit.NOT_SET_UP and "rotation" in stale.stdout + stale.stderr
    assert _events(late) == 0
