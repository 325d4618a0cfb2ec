"""The pipeline has exactly one handler per message kind (no catch-all)."""

from __future__ import annotations

from schemas.envelope import MESSAGE_KINDS, MessageKind
from trust.ingest.pipeline import _ACCEPT


def test_one_handler_per_message_kind() -> None:
    assert set(_ACCEPT) == set(MessageKind)
    assert tuple(k.value for k in MessageKind) == MESSAGE_KINDS
