"""A source's key leaked: the source makes a new key, the trust registers it and revokes the
old one; what the old key signed and the trust had not read yet is refused with the reason
`revoked_source_key`, and the source sends it again under its new key."""

from __future__ import annotations

import json
from pathlib import Path

from tiptrust.cli.common import Exit

from .conftest import RunCli, last_json, publish_args
from .test_publish import _setup


def _key_ids(folder: Path) -> set[str]:
    return {p.name.split(".")[0] for p in folder.glob("*.ed25519.pub.pem")}


def test_a_revoked_key_signs_nothing_more_and_the_source_resends(
    cli: RunCli, tmp_path: Path
) -> None:
    sim = _setup(cli, tmp_path, persons=120, sources=("nrm",))
    keys = tmp_path / "home" / "sources" / "nrm" / "keys"
    [old] = _key_ids(keys)
    sent = last_json(cli(*publish_args(sim, "nrm"), "--json").stdout)
    assert sent["events_published"] > 0  # on the log, signed with the old key, not read yet

    cli("keys", "rotate-source", "--source", "nrm")
    [new] = _key_ids(keys) - {old}
    cli(
        "trust", "register", "--source", "nrm", "--public-key", str(keys / f"{new}.ed25519.pub.pem")
    )
    done = cli("trust", "revoke-key", "--source", "nrm", "--key-id", old)
    assert "revoked" in done.stdout
    again = cli("trust", "revoke-key", "--source", "nrm", "--key-id", old, check=False)
    assert again.returncode == Exit.USAGE and "already_revoked" in again.stdout + again.stderr
    unknown = cli("trust", "revoke-key", "--source", "nrm", "--key-id", "nope", check=False)
    assert unknown.returncode == Exit.USAGE and "unknown_key" in unknown.stdout + unknown.stderr

    first = last_json(cli("trust", "run", "--json").stdout)
    assert first["accepted"] == 0
    assert first["rejected"] == {"revoked_source_key": sent["events_published"]}

    # the source sends everything again: sealed and signed anew, with its active (new) key
    cli(*publish_args(sim, "nrm"), "--resend")
    second = last_json(cli("trust", "run", "--json").stdout)
    assert second["accepted"] == sent["events_published"] and second["rejected"] == {}

    audit = cli("audit", "export").stdout.splitlines()
    revoked = [json.loads(line) for line in audit if '"SourceKeyRevoked"' in line]
    assert [e["facts"]["key_id"] for e in revoked] == [old]
