"""Settings, declared once and read at the edge, and the layout of a tiptrust home folder.

Every command takes ``--home DIR`` (env ``TIPTRUST_HOME``, default ``./.tiptrust``). In a real
deployment each agency and the trust have their own machines; the home folder keeps each role's
files in its own subfolder so one machine can play them all (the demo, the tests):

```
HOME/log.db                                 the embedded event log (sqlite:///…), unless --log
HOME/trust/keys/<kid>.x25519.pem            trust private keys (0600), state.json (active/retired)
HOME/trust/release/<kid>.ed25519.pem        the trust's release-signing key (0600)
HOME/trust/kek.bin                          key-encryption key of the person-key vault (0600)
HOME/trust/sources/<source>/…               registered source public keys + agreement.yaml
HOME/trust/store.db                         the event store (sqlite), unless --store
HOME/sources/<source>/keys/<kid>.ed25519.pem   the source's signing key (0600)
HOME/sources/<source>/trust.pub.pem         the trust public key the source seals to
HOME/sources/<source>/outbox.db             the source's durable outbox
HOME/consumers/<consumer>/trust-release.pub.pem  the release key the consumer trusts
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: str
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "home",
        "TIPTRUST_HOME",
        ".tiptrust",
        "folder for keys, registrations and embedded databases",
    ),
    Setting(
        "log",
        "TIPTRUST_LOG",
        "",
        "event-log URL: sqlite:///path.db or kafka://host:port (default HOME/log.db)",
    ),
    Setting(
        "store",
        "TIPTRUST_STORE",
        "",
        "event-store URL: sqlite:///… or postgresql+psycopg://… (default HOME/trust/store.db)",
    ),
)


def setting(name: str, given: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """A setting's value: the command-line value if given, else its environment variable, else default."""
    spec = next(s for s in SETTINGS if s.name == name)
    if given:
        return given
    environ = os.environ if env is None else env
    return environ.get(spec.env) or spec.default


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, given: str | Path | None = None) -> Home:
        return cls(Path(setting("home", str(given) if given else None)).absolute())

    def log_url(self, given: str | None = None) -> str:
        return setting("log", given) or f"sqlite:///{self.root / 'log.db'}"

    def store_url(self, given: str | None = None) -> str:
        return setting("store", given) or f"sqlite:///{self.trust / 'store.db'}"

    @property
    def trust(self) -> Path:
        return self.root / "trust"

    @property
    def trust_keys(self) -> Path:
        return self.trust / "keys"

    @property
    def trust_key_state(self) -> Path:
        return self.trust_keys / "state.json"

    @property
    def release_keys(self) -> Path:
        return self.trust / "release"

    @property
    def kek(self) -> Path:
        return self.trust / "kek.bin"

    def registered(self, source_id: str) -> Path:
        return self.trust / "sources" / source_id

    @property
    def registered_sources(self) -> list[str]:
        d = self.trust / "sources"
        return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []

    def source(self, source_id: str) -> Path:
        return self.root / "sources" / source_id

    def source_keys(self, source_id: str) -> Path:
        return self.source(source_id) / "keys"

    def source_trust_pub(self, source_id: str) -> Path:
        return self.source(source_id) / "trust.pub.pem"

    def outbox(self, source_id: str) -> Path:
        return self.source(source_id) / "outbox.db"

    def consumer(self, consumer_id: str) -> Path:
        return self.root / "consumers" / consumer_id
