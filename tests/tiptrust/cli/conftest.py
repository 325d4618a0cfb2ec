"""The one place the in-process CLI tests get their API token: every home they make has
:data:`CUSTODIAN_TOKEN` as its first custodian's (``keys trust-init`` and the demo adopt the
token they are given), and every command runs with it unless a test says otherwise."""

from __future__ import annotations

import pytest

CUSTODIAN_TOKEN = "tt1.0c11c0570d1a0000." + "cli-custodian-" * 4


@pytest.fixture(autouse=True)
def custodian_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TIPTRUST_TOKEN", CUSTODIAN_TOKEN)
    return CUSTODIAN_TOKEN
