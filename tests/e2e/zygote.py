"""The process :class:`tests.e2e.forkserver.ForkServer` forks each `tiptrust` command from.

Run as a script (never imported by the tests): it imports what the CLI imports when it starts and
what `trust run` imports when it links, then serves requests read from its stdin, one JSON line
each (``args``, ``env``, ``cwd``, ``out``, ``err``). For each it forks; the parent answers the
child's pid and, once it exits, its exit code (negative for a signal, as ``subprocess`` says); the
child takes the request's folder, environment, argv and output files and runs ``tiptrust`` as
``python -m tiptrust`` does (``runpy``), so it ends as that interpreter would: ``sys.exit``'s code,
atexit handlers, flushed output. The start-up a fresh interpreter pays for every command (about a
second of imports) is paid once per server instead.

The protocol uses the raw file descriptors 0 and 1 (``os.read``/``os.write``): nothing is left in
a Python buffer when a child starts, and the child replaces both before it runs the command.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import sys
from typing import Any

# sys.path[0] is this script's folder: a command run as `python -m tiptrust` has its working
# folder there instead (set per command below), and nothing is imported from tests/e2e
sys.path[0] = os.getcwd()

#: What a command imports before it does anything: the CLI and its commands, then what they
#: import when they run (typer's adapters, rich's pretty printing, the embedded log), then the
#: linkage libraries `trust run`, `demo` and `link` load (numpy, scipy: a second more).
PRELOADED = (
    "tiptrust.cli",
    "typer._adapters",
    "rich._emoji_codes",
    "rich.pretty",
    "transport.sqlite",
    "trust.linkage.resolver",
    "trust.linkage.training",
)
for _name in PRELOADED:
    # one that fails to import is left out: the command imports it again and fails as it would
    with contextlib.suppress(Exception):
        importlib.import_module(_name)

# what was imported lives as long as every child: moved out of the collector's sight, it is not
# walked (and its pages not copied) by each child's collections and interpreter exit — which
# otherwise cost a child more CPU (0.4 s) than the command --help itself
gc.freeze()


def _send(message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


def _serve() -> dict[str, Any]:
    """Serve until stdin closes (then exit); returns only in a forked child, with its request."""
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = os.read(0, 65536)
            if not chunk:
                os._exit(0)
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        request: dict[str, Any] = json.loads(line)
        pid = os.fork()
        if pid == 0:
            return request
        _send({"pid": pid})
        _, status, usage = os.wait4(pid, 0)
        _send(
            {
                "returncode": os.waitstatus_to_exitcode(status),
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
            }
        )


def _become(request: dict[str, Any]) -> None:
    """Make this forked child look like `python -m tiptrust ARGS` started in the request's
    folder with the request's environment, stdin from /dev/null, output to the given files."""
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()
    sys.argv = ["tiptrust", *request["args"]]


_become(_serve())

import runpy  # noqa: E402

runpy.run_module("tiptrust", run_name="__main__", alter_sys=True)
