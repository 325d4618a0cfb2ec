"""The fork server the e2e tests start `tiptrust` from behaves as a fresh `python -m tiptrust`:
the same output and exit codes, the request's environment and folder, a timeout that kills.
(On the session's :func:`launcher`, the one the other tests use: no second server to start.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .forkserver import Launcher


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TIPTRUST_HOME": str(tmp_path / "home"), "COLUMNS": "120"}


def test_a_forked_command_says_what_a_fresh_one_says(tmp_path: Path, launcher: Launcher) -> None:
    for args in (["trust", "run", "--help"], ["trust", "run", "--no-such-option"]):
        forked = launcher.run(args, env=_env(tmp_path), cwd=tmp_path, timeout=60)
        fresh = subprocess.run(
            [sys.executable, "-m", "tiptrust", *args],
            env=_env(tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (forked.returncode, forked.stdout, forked.stderr) == (
            fresh.returncode,
            fresh.stdout,
            fresh.stderr,
        )
    assert forked.returncode == 2 and "--no-such-option" in forked.stderr


def test_each_command_gets_its_own_environment_and_folder(
    tmp_path: Path, launcher: Launcher
) -> None:
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        done = launcher.run(["keys", "trust-init"], env=_env(folder), cwd=folder, timeout=120)
        assert done.returncode == 0, done.stderr
        assert (folder / "home" / "trust" / "kek.bin").is_file()
    assert not (tmp_path / "home").exists()


def test_a_command_past_its_timeout_is_killed_and_the_server_goes_on(
    tmp_path: Path, launcher: Launcher
) -> None:
    env = _env(tmp_path)
    assert launcher.run(["keys", "trust-init"], env=env, cwd=tmp_path).returncode == 0
    follow = ["trust", "run", "--follow", "--log", f"sqlite:///{tmp_path / 'log.db'}"]
    with pytest.raises(subprocess.TimeoutExpired):
        launcher.run(follow, env=env, cwd=tmp_path, timeout=2)
    started = launcher.start(follow, env=env, cwd=tmp_path, stderr=tmp_path / "follow.err")
    assert started.poll() is None
    started.send_signal(signal.SIGKILL)
    assert started.wait() == -signal.SIGKILL
    again = launcher.run(["trust", "run", "--help"], env=env, cwd=tmp_path)
    assert again.returncode == 0 and "Usage" in again.stdout
