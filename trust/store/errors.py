"""The store's errors: named by meaning, carrying a code or an opaque id, never a value."""

from __future__ import annotations

from schemas.errors import ContractError, ReasonCode


class DuplicateEvent(ContractError):
    """An inbound event id was already accepted; the whole append was rolled back."""

    code = ReasonCode.DUPLICATE_EVENT


class KeyShredded(Exception):
    """The person's data key was destroyed (crypto-shredding): the data is gone for good."""

    def __init__(self, person_key_id: str) -> None:
        # The id is an HMAC under the vault's key: it reveals nothing about the person.
        super().__init__(f"person key {person_key_id} was shredded")
        self.person_key_id = person_key_id


class VaultKeyMismatch(Exception):
    """The key-encryption key given is not the one this store's vault is wrapped under."""

    code = "vault_key_mismatch"
