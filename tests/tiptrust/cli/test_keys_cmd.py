"""`tiptrust keys rotate-kek`: the vault's key-encryption key is replaced, person keys keep
working under the new one, and the old one is gone."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tiptrust import wiring
from tiptrust.cli import app
from tiptrust.home import Home
from trust.store.eventstore import open_store
from trust.store.vault import open_vault


def test_rotate_kek_rewraps_every_person_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner = CliRunner()
    assert runner.invoke(app, ["keys", "trust-init", "--home", str(home)]).exit_code == 0
    h = Home(home)
    store = open_store(h.store_url(None))
    vault = open_vault(store.engine, wiring.key_provider(h))
    blob = vault.seal(vault.person_key_id("police", "CR-1", "V1"), b"identifiers", b"aad")
    store.close()
    before = h.kek.read_bytes()

    result = runner.invoke(app, ["keys", "rotate-kek", "--home", str(home)])

    assert result.exit_code == 0, result.output
    assert "1 person keys re-wrapped" in result.output
    assert h.kek.read_bytes() != before
    assert not list(h.kek.parent.glob("*.next"))
    store = open_store(h.store_url(None))
    try:
        again = open_vault(store.engine, wiring.key_provider(h))
        assert again.open(blob, b"aad") == b"identifiers"
    finally:
        store.close()


def test_rotate_kek_without_a_trust_is_not_set_up(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["keys", "rotate-kek", "--home", str(tmp_path / "none")])
    assert result.exit_code == 5, result.output
    assert "trust-init" in result.output
