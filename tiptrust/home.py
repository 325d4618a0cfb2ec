"""Settings, declared once and read at the edge, and the layout of a tiptrust home folder.

Every setting is a field of :class:`Settings` with its type, environment variable, default and
doc (``SETTINGS`` lists them). :meth:`Settings.from_env` reads them all and reports every bad
value at once, by variable name and never with the value. Only ``tiptrust/`` reads the
environment; libraries get explicit objects. A command-line option beats its environment
variable, which beats the default.

Kafka client options (librdkafka settings, e.g. production timings or TLS/SASL) come in
``TIPTRUST_KAFKA_OPTIONS``, with the syntax of a URL query:
``TIPTRUST_KAFKA_OPTIONS="session.timeout.ms=45000&security.protocol=ssl"``. They are added to a
``kafka://`` log URL's query (an option already in the URL wins) by :meth:`Home.log_url`, and
every one is checked against librdkafka: an unknown name, an invalid value or an option the
transport fixes is refused by name.

Every command takes ``--home DIR`` (env ``TIPTRUST_HOME``, default ``./.tiptrust``). In a real
deployment each agency and the trust have their own machines; the home folder keeps each role's
files in its own subfolder so one machine can play them all (the demo, the tests):

```
HOME/log.db                                 the embedded event log (sqlite:///…), unless --log
HOME/trust/keys/<kid>.x25519.pem            trust private keys (0600), state.json (active/retired)
HOME/trust/release/<kid>.ed25519.pem        the trust's release-signing keys (0600), state.json
HOME/trust/kek.bin                          key-encryption key of the person-key vault (0600)
HOME/trust/sources/<source>/keys/           registered source public keys
HOME/trust/sources/<source>/agreements/vNNNN.yaml   each registered agreement version
HOME/trust/store.db                         the event store (sqlite), unless --store
HOME/trust/population/population.csv, population.source.txt   population denominators (rate streams)
HOME/sources/<source>/keys/<kid>.ed25519.pem   the source's signing keys (0600), state.json
HOME/sources/<source>/keys/message-key.bin  the secret of the source's message keys (0600)
HOME/sources/<source>/trust.pub.pem         the trust public key the source seals to
HOME/sources/<source>/outbox.db             the source's durable outbox
HOME/consumers/<consumer>/trust-release.pub.pem  the release key the consumer trusts
```
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from transport import (
    InvalidLogOptions,
    UnsupportedLogURL,
    check_log_url,
    with_log_options,
)
from transport.kafka_config import format_options, parse_options

LOGGING_LEVELS = ("debug", "info", "warning", "error")
LOGGING_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """Some settings are invalid; ``problems`` names each (``ENV_VAR: what is wrong``)."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid settings: " + "; ".join(self.problems))


# --- parsers: raw environment text -> typed value, or ValueError naming what was expected ---


def _text(raw: str) -> str:
    return raw


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _problems_of(exc: UnsupportedLogURL) -> list[str]:
    return list(exc.problems) if isinstance(exc, InvalidLogOptions) else [str(exc)]


def _log_url(raw: str) -> str:
    try:
        check_log_url(raw)
    except UnsupportedLogURL as exc:
        raise ValueError("; ".join(_problems_of(exc))) from None
    return raw


def _store_url(raw: str) -> str:
    scheme = raw.partition("://")[0].lower()
    if not raw.partition("://")[1] or scheme.split("+")[0] not in ("sqlite", "postgresql"):
        raise ValueError("expected sqlite:///path.db or postgresql+psycopg://…")
    return raw


def _kafka_options(raw: str) -> dict[str, str]:
    options, problems = parse_options(raw)
    if not problems and options:
        try:
            check_log_url(f"kafka://settings.check:9092?{format_options(options)}")
        except UnsupportedLogURL as exc:
            problems = _problems_of(exc)
    if problems:
        raise ValueError("; ".join(problems))
    return options


def _meta(env: str, kind: str, doc: str, parse: Callable[[str], Any]) -> dict[str, Any]:
    """A :class:`Settings` field's declaration: its env variable, type name, doc and parser."""
    return {"env": env, "kind": kind, "doc": doc, "parse": parse}


@dataclass(frozen=True)
class Settings:
    """Every setting of tiptrust, typed; read from the environment by :meth:`from_env`."""

    home: Path = field(
        default=Path(".tiptrust"),
        metadata=_meta(
            "TIPTRUST_HOME",
            "path",
            "folder for keys, registrations and embedded databases (command line: --home)",
            _path,
        ),
    )
    log: str = field(
        default="",
        metadata=_meta(
            "TIPTRUST_LOG",
            "URL",
            "event-log URL: sqlite:///path.db or kafka://host:port[?option=value&…] "
            "(command line: --log; default sqlite HOME/log.db)",
            _log_url,
        ),
    )
    store: str = field(
        default="",
        metadata=_meta(
            "TIPTRUST_STORE",
            "URL",
            "trust event-store URL: sqlite:///… or postgresql+psycopg://… "
            "(command line: --store; default sqlite HOME/trust/store.db)",
            _store_url,
        ),
    )
    kafka_options: Mapping[str, str] = field(
        default_factory=dict,
        metadata=_meta(
            "TIPTRUST_KAFKA_OPTIONS",
            "options",
            "librdkafka options for a kafka:// log, as a URL query: "
            "session.timeout.ms=45000&security.protocol=ssl (the log URL's own options win)",
            _kafka_options,
        ),
    )
    logging_level: str = field(
        default="warning",
        metadata=_meta(
            "TIPTRUST_LOGGING_LEVEL",
            "choice",
            f"diagnostics level on stderr: {', '.join(LOGGING_LEVELS)}",
            _choice(LOGGING_LEVELS),
        ),
    )
    logging_format: str = field(
        default="text",
        metadata=_meta(
            "TIPTRUST_LOGGING_FORMAT",
            "choice",
            "diagnostics format: text (one line each) or json (one object per line)",
            _choice(LOGGING_FORMATS),
        ),
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``); unset or empty = default.

        Raises:
            SettingsError: listing every invalid setting by variable name (never its value).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            raw = env.get(f.metadata["env"], "").strip()
            if not raw:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                problems.append(f"{f.metadata['env']}: {exc}")
        if problems:
            raise SettingsError(problems)
        return cls(**values)

    def log_url(self, root: Path, given: str | None = None) -> str:
        """The event-log URL: ``given``, else ``TIPTRUST_LOG``, else ``sqlite:///ROOT/log.db``;
        a ``kafka://`` URL gets ``TIPTRUST_KAFKA_OPTIONS`` added to its query (its own win)."""
        url = given or self.log or f"sqlite:///{root / 'log.db'}"
        return with_log_options(url, self.kafka_options)

    def store_url(self, root: Path, given: str | None = None) -> str:
        """The event-store URL: ``given``, else ``TIPTRUST_STORE``, else SQLite in the home."""
        return given or self.store or f"sqlite:///{root / 'trust' / 'store.db'}"


@dataclass(frozen=True)
class Setting:
    """One setting's declaration, for listings and docs (from :class:`Settings`' fields)."""

    name: str
    env: str
    kind: str
    default: str
    doc: str


def _default_text(f: Any) -> str:
    value = f.default_factory() if callable(f.default_factory) else f.default
    return str(value) if value not in ("", {}) else "(none)"


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.metadata["env"], f.metadata["kind"], _default_text(f), f.metadata["doc"])
    for f in fields(Settings)
)
"""Every setting: name, environment variable, type, default and doc."""


def checked_log_url(given: str, environ: Mapping[str, str] | None = None) -> str:
    """``given`` with ``TIPTRUST_KAFKA_OPTIONS`` added (for a ``kafka://`` URL), checked as
    :func:`transport.open_log` would check it, without opening or connecting.

    Raises:
        SettingsError: the URL or its options are invalid (every problem, by option name).
    """
    env = os.environ if environ is None else environ
    try:
        options = _kafka_options(env.get("TIPTRUST_KAFKA_OPTIONS", "").strip())
    except ValueError as exc:
        raise SettingsError([f"TIPTRUST_KAFKA_OPTIONS: {exc}"]) from None
    try:
        url = with_log_options(given, options)
        check_log_url(url)
    except UnsupportedLogURL as exc:
        raise SettingsError(_problems_of(exc)) from None
    return url


@dataclass(frozen=True)
class Home:
    """A tiptrust home folder and the settings its commands run with.

    ``settings`` defaults to the environment's, read when first needed.
    """

    root: Path
    settings: Settings | None = field(default=None, compare=False, repr=False)

    @classmethod
    def resolve(
        cls, given: str | Path | None = None, environ: Mapping[str, str] | None = None
    ) -> Home:
        """The home named by ``given`` (``--home``), else ``TIPTRUST_HOME``, else ``./.tiptrust``.

        Raises:
            SettingsError: some setting in the environment is invalid (all are listed).
        """
        settings = Settings.from_env(environ)
        root = Path(given).expanduser() if given else settings.home
        return cls(root.absolute(), settings)

    def _settings(self) -> Settings:
        return self.settings if self.settings is not None else Settings.from_env()

    def log_url(self, given: str | None = None) -> str:
        """The event-log URL (see :meth:`Settings.log_url`), with Kafka options applied."""
        return self._settings().log_url(self.root, given)

    def store_url(self, given: str | None = None) -> str:
        """The event-store URL (see :meth:`Settings.store_url`)."""
        return self._settings().store_url(self.root, given)

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

    @property
    def population_dir(self) -> Path:
        """Where the operator's population denominators for rate streams are kept."""
        return self.trust / "population"

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
