"""Destroying the trust's old encryption keys once nothing they open is left.

Every envelope on the inbound log is sealed (HPKE) to one of the trust's encryption keys. A key
replaced by ``tiptrust keys rotate-trust`` stays held so that envelopes already sealed to it
still open; while it is held, it also opens any copy of them. So, at most once per interval,
after inbound retention has deleted what the trust took in (:mod:`.inbound_retention`), each
held key that is not the active one is destroyed when

- it was replaced at least ``grace_days`` ago (default 30: sources learn the new public key
  out of band and may still have envelopes sealed to the old one waiting in their outboxes), and
- no envelope sealed to it is left on any inbound topic (read from the envelopes' headers, which
  name the key, without opening anything): all were taken in and deleted after their retention.

Destroying means the keyring stops using it, its private key file is deleted and a
``TrustKeyRetired`` event records it for the audit log. A log that cannot delete records keeps
every envelope, so on it no key is ever destroyed this way (``keys retire-trust`` does it by
hand). An envelope that arrives later sealed to a destroyed key is refused as sealed to a key the
trust does not hold, and its source sends it again under the current key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from schemas.envelope import peek_header
from schemas.errors import ContractError
from schemas.keys import Keyring, KeyState
from transport import EventLog
from transport.topics import INBOUND_PREFIX
from trust.schedule import Every
from trust.store.events import TrustKeyRetired, new_event_id
from trust.store.eventstore import EventStore

__all__ = ["TRUST_KEYS", "TrustKeyRetirement"]

TRUST_KEYS = "trust-key-retirement"
"""The store consumer name its events are appended under."""

_DAY_MS = 86_400_000

log = logging.getLogger(__name__)


class TrustKeyRetirement:
    """Destroys replaced trust keys nothing on the log needs any more (see the module text)."""

    def __init__(
        self,
        event_log: EventLog,
        store: EventStore,
        keyring: Keyring,
        lifecycle: Callable[[], KeyState],
        retire: Callable[[str], None],
        *,
        grace_days: int = 30,
        every_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if grace_days < 0:
            raise ValueError("grace_days must be >= 0")
        self.event_log = event_log
        self.store = store
        self.keyring = keyring
        self.lifecycle = lifecycle
        self.retire = retire
        self.grace_days = grace_days
        self.every = Every(every_s, clock)

    def __call__(self) -> list[str]:
        return self.run_now() if self.every.due() else []

    def run_now(self) -> list[str]:
        """Destroy what is due now; returns the key ids destroyed."""
        self.every.ran()
        now_ms = int(self.every.clock() * 1000)
        state = self.lifecycle()
        due = [
            k
            for k in state.held
            if k != state.active
            and (at := state.replaced_at_ms.get(k)) is not None
            and now_ms - at >= self.grace_days * _DAY_MS
        ]
        if not due:
            return []
        in_use = self._sealed_to()
        done = []
        for kid in due:
            if kid in in_use:
                continue
            self.retire(kid)
            self.keyring.remove_trust_key(kid)
            self.store.append([TrustKeyRetired(new_event_id(), kid, now_ms)], None, TRUST_KEYS)
            log.info("trust key %s destroyed: replaced, nothing on the log sealed to it", kid)
            done.append(kid)
        return done

    def _sealed_to(self) -> set[str]:
        """The trust keys the envelopes left on the inbound topics are sealed to."""
        used: set[str] = set()
        for topic in self.event_log.list_topics(INBOUND_PREFIX):
            for record in self.event_log.read_all(topic):
                try:
                    used.add(peek_header(record.value).trust_key_id)
                except (ContractError, ValueError, KeyError, TypeError):
                    continue  # unreadable: nothing any key opens
        return used
