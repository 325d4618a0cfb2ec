"""Run `tiptrust` commands as processes forked from a server that has imported the CLI already.

A fresh `python -m tiptrust` spends about a second importing before it does anything (two when it
links), and an end-to-end test runs tens of commands: most of its time went to start-ups. Each
command here is still its own process, with its own arguments, environment, working folder, exit
code and output, killed on timeout like ``subprocess.run``'s; only the imports are shared (see
``zygote.py``).

What a fork shares with its siblings, and a fresh interpreter would not: the string hash seed
(random per server, so per test process, not per command). ``random`` reseeds itself in a forked
child; the code under test draws nothing from numpy's global generator. A test that compares two
runs to show they depend on nothing random in the process must start them as fresh interpreters:
mark it ``fresh_interpreters``. ``TIPTRUST_E2E_FORK=0`` starts every command fresh (to rule the
server out when something looks wrong).
"""

from __future__ import annotations

import json
import locale
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

ZYGOTE = Path(__file__).with_name("zygote.py")
FORK_ENV = "TIPTRUST_E2E_FORK"
FRESH_STARTUP_S = 1.0
"""About how long a fresh `python -m tiptrust` imports before it works (a forked one: nothing)."""


class ForkServerError(RuntimeError):
    """The fork server died or answered what it should not (its stderr is in the message)."""


def forking_enabled() -> bool:
    return os.environ.get(FORK_ENV, "1").strip() != "0"


def _text(data: bytes) -> str:
    """Bytes as ``subprocess.run(text=True)`` gives them: the locale's encoding, universal
    newlines."""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


class ForkServer:
    """One zygote process (started now, in ``cwd``), serving commands one at a time."""

    def __init__(self, cwd: Path) -> None:
        self._scratch = Path(tempfile.mkdtemp(prefix="tiptrust-fork-"))
        self._stderr: IO[bytes] = (self._scratch / "zygote.err").open("w+b")
        self._proc = subprocess.Popen(
            [sys.executable, str(ZYGOTE)],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._pending = b""
        self._calls = 0
        self._running: Forked | None = None
        self.last_cpu = 0.0
        """The CPU seconds of the last command (for measurements)."""

    def _fail(self, what: str) -> ForkServerError:
        self._stderr.seek(0)
        return ForkServerError(f"{what}\n{self._stderr.read().decode(errors='replace')[-4000:]}")

    def _receive(self, deadline: float | None) -> dict[str, Any] | None:
        """The server's next answer; None when ``deadline`` passes first."""
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._pending:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not sel.select(wait):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise self._fail("the fork server exited")
                self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def start(
        self, args: Sequence[str], *, env: dict[str, str], cwd: Path, out: Path, err: Path
    ) -> Forked:
        """Fork a command (stdout to ``out``, stderr to ``err``); the server serves nothing else
        until it has ended (:meth:`Forked.wait`)."""
        assert self._running is None, "the fork server runs one command at a time"
        request = {
            "args": list(args),
            "env": env,
            "cwd": str(cwd),
            "out": str(out),
            "err": str(err),
        }
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise self._fail("the fork server exited") from None
        started = self._receive(None)
        assert started is not None and "pid" in started, started
        self._running = Forked(self, started["pid"], [sys.executable, "-m", "tiptrust", *args])
        return self._running

    def _ended(self, deadline: float | None) -> int | None:
        """The running command's exit code once it ends; None if ``deadline`` passes first."""
        done = self._receive(deadline)
        if done is None:
            return None
        assert "returncode" in done, done
        self.last_cpu = done["cpu_seconds"]
        self._running = None
        code: int = done["returncode"]
        return code

    def run(
        self, args: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Like ``subprocess.run([python, -m, tiptrust, *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=timeout)``."""
        self._calls += 1
        out = self._scratch / f"{self._calls}.out"
        err = self._scratch / f"{self._calls}.err"
        forked = self.start(args, env=env, cwd=cwd, out=out, err=err)
        try:
            code: int | None = forked.wait(timeout)
        except subprocess.TimeoutExpired:  # as subprocess.run does: kill it, then say so
            forked.send_signal(signal.SIGKILL)
            forked.wait()
            code = None
        stdout, stderr = _text(out.read_bytes()), _text(err.read_bytes())
        out.unlink()
        err.unlink()
        if code is None:
            raise subprocess.TimeoutExpired(forked.args, timeout, output=stdout, stderr=stderr)
        return subprocess.CompletedProcess(forked.args, code, stdout, stderr)

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        """Stop the server (it exits when its stdin closes) and remove its scratch folder."""
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


class Forked:
    """A command forked by a :class:`ForkServer`, as much of ``subprocess.Popen`` as tests use."""

    def __init__(self, server: ForkServer, pid: int, args: list[str]) -> None:
        self._server = server
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            deadline = None if timeout is None else time.monotonic() + timeout
            self.returncode = self._server._ended(deadline)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return self.returncode

    def poll(self) -> int | None:
        try:
            return self.wait(0)
        except subprocess.TimeoutExpired:
            return None


class Started(Protocol):
    """What a test does with a command it started: :class:`Forked` or ``subprocess.Popen``."""

    def send_signal(self, sig: int) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def poll(self) -> int | None: ...
    def kill(self) -> None: ...


class Launcher:
    """Starts `tiptrust` commands: forked from a :class:`ForkServer` (made at the first command)
    unless ``fresh``, then each is a new interpreter (``subprocess.run``)."""

    def __init__(self, cwd: Path, *, fresh: bool = False) -> None:
        self._cwd = cwd
        self._fresh = fresh or not forking_enabled()
        self._server: ForkServer | None = None
        self.startup_s = FRESH_STARTUP_S if self._fresh else 0.0
        """About how long a command it starts spends before its work (imports)."""

    def run(
        self, args: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        if self._fresh:
            return subprocess.run(
                [sys.executable, "-m", "tiptrust", *args],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        return self._serving().run(args, env=env, cwd=cwd, timeout=timeout)

    def start(
        self, args: Sequence[str], *, env: dict[str, str], cwd: Path, stderr: Path
    ) -> Started:
        """Start a command without waiting for it (stdout to /dev/null, stderr to ``stderr``):
        like ``subprocess.Popen([python, -m, tiptrust, *args], ...)``. Until it has ended
        (``wait``), this launcher starts nothing else."""
        if self._fresh:
            with stderr.open("wb") as to:
                return subprocess.Popen(
                    [sys.executable, "-m", "tiptrust", *args],
                    cwd=cwd,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=to,
                )
        return self._serving().start(args, env=env, cwd=cwd, out=Path(os.devnull), err=stderr)

    def _serving(self) -> ForkServer:
        if self._server is not None and not self._server.alive():
            self._server.close()  # it died (its last error was raised): start another
            self._server = None
        if self._server is None:
            self._server = ForkServer(self._cwd)
        return self._server

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
