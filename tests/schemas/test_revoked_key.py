"""A revoked source key opens nothing: not a new batch, and not the rest of a batch whose seal
was already verified and cached before the revocation."""

from __future__ import annotations

import pytest

from schemas.envelope import OpenCache, open_event, seal_batch
from schemas.errors import ReasonCode, RevokedSourceKey
from schemas.keys import Keyring, SigningKey, TrustKeyPair

from .test_envelope import _events


def test_a_revoked_key_opens_nothing_even_a_cached_batch(
    source_key: SigningKey, trust_key: TrustKeyPair
) -> None:
    ring = Keyring([trust_key], [source_key.public])
    envelopes = seal_batch(
        _events(source_key, trust_key, 4), trust_key=trust_key.public, source_key=source_key
    )
    cache = OpenCache()
    open_event(envelopes[0], keyring=ring, cache=cache)  # the batch's seal is now cached
    ring.revoke_source_key("police", source_key.key_id)
    assert ring.is_revoked("police", source_key.key_id)
    for raw in envelopes[1:]:
        with pytest.raises(RevokedSourceKey) as refused:
            open_event(raw, keyring=ring, cache=cache)
        assert refused.value.code is ReasonCode.REVOKED_SOURCE_KEY
    # a new key of the same source still opens
    new = SigningKey.generate("police")
    ring.add_source_key(new.public)
    fresh = seal_batch(_events(new, trust_key, 1), trust_key=trust_key.public, source_key=new)
    assert open_event(fresh[0], keyring=ring, cache=cache).header.source_key_id == new.key_id
    # registering the revoked key again does not bring it back
    ring.add_source_key(source_key.public)
    with pytest.raises(RevokedSourceKey):
        open_event(envelopes[0], keyring=ring, cache=cache)
