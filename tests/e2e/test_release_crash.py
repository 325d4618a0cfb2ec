"""The trust killed (SIGKILL) at random points while it releases often never puts two different
releases under one sequence number: every release is recorded with its signed bytes before it is
sent, and a restart re-sends exactly those bytes. The ministry then accepts the re-sends silently.
(The window between recording and sending is also killed deterministically in
tests/trust/release/test_recorded_first.py.)"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import defaultdict
from pathlib import Path

from transport import open_log, topics

from .conftest import RunCli, last_json, subscribe
from .forkserver import Launcher

# a two-way stream: what is tested is the release sequence, the same for every stream, and the
# four-way stream's secondary suppression (seconds per release) would make a hundred releases
# take minutes
STREAM = "victims_by_year_sex"
KILLS = 10


def test_random_kills_never_make_two_releases_with_one_sequence(
    cli: RunCli, tmp_path: Path, published: Path, launcher: Launcher
) -> None:
    subscribe(cli, stream=STREAM)
    env = {**os.environ, "TIPTRUST_HOME": str(tmp_path / "home")}
    # small batches and a release check after every one: many releases, many windows to die in
    args = ["trust", "run", "--batch", "15", "--release-every", "0", "--json"]
    rng = random.Random(os.getpid())
    for i in range(KILLS):
        proc = launcher.start(args, env=env, cwd=tmp_path, stderr=tmp_path / f"killed-{i}.err")
        # killed 0.5-2.5 s into its work: after its start-up (the imports of a fresh interpreter,
        # about a second; none for one forked from the fork server), mostly
        time.sleep(launcher.startup_s + rng.uniform(0.5, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the last run goes on in small batches too: how often the trust releases then depends on
    # the data, not on how far the killed runs got on a loaded machine
    final = last_json(cli("trust", "run", "--batch", "15", "--release-every", "0", "--json").stdout)
    assert final["caught_up"]

    topic = topics.release("ministry", STREAM)
    with open_log(f"sqlite:///{tmp_path / 'home' / 'log.db'}") as log:
        records = log.read_all(topic)
    from schemas.release import decode_release

    by_sequence: dict[int, set[bytes]] = defaultdict(set)
    for r in records:
        by_sequence[decode_release(r.value).sequence].add(r.value)
    assert len(by_sequence) >= 3, "the runs must have released several times"
    assert all(len(v) == 1 for v in by_sequence.values()), {
        s: len(v) for s, v in by_sequence.items()
    }
    assert sorted(by_sequence) == list(range(1, len(by_sequence) + 1))

    got = cli("subscribe", "--consumer", "ministry", "--stream", STREAM, "--out", "out")
    assert f"ministry: {len(records)} received" in got.stdout
