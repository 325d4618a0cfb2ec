"""What a benchmark result was measured on: the code's git commit (and any uncommitted changes
to it), the machine, its load, and the peak memory of this process."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CODE = (
    "benchmarks",
    "consumers",
    "infra",
    "producers",
    "schemas",
    "tiptrust",
    "transport",
    "trust",
)


def code_state(root: Path = ROOT) -> dict[str, Any]:
    """The commit of ``root`` and the code files that differ from it (tests and docs aside)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        ).stdout

    changed = git("status", "--porcelain", "--", *CODE).splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or None, "uncommitted": changed}


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB: ``VmHWM`` from ``/proc/self/status`` on Linux
    (reset by exec, unlike ``getrusage``'s ``ru_maxrss``, which keeps a forking parent's peak),
    else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
