"""The composition root's factories: build each role's objects from a home folder's files."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from producers.message_key import MessageKeyError, load_or_create_keyer
from producers.workflow import SourceSetup
from schemas.codec import default_registry
from schemas.keys import (
    FileKeyProvider,
    KeyFileError,
    KeyProvider,
    Keyring,
    KeyStore,
    SigningKey,
    TrustKeyPair,
    TrustKeyState,
    TrustPublicKey,
    VerifyKey,
    read_trust_key,
    read_trust_public,
    read_verify_key,
    write_trust_key,
)
from tiptrust.home import Home
from transport import EventLog
from transport.topics import validate_name
from trust.follow import follow
from trust.ingest.pipeline import IngestPipeline
from trust.ingest.receipts import ReceiptPublisher
from trust.ingest.worker import IngestWorker
from trust.release.cellkeys import record_key_secret
from trust.release.population import Population, PopulationError, load_population
from trust.release.publish import ReleasePublisher, ReleaseSigner
from trust.release.stage import ReleaseStage
from trust.release.streams import CATALOGUE as STREAMS  # count and estimate streams
from trust.runner import TrustRunner
from trust.stewardship.agreement import (
    Agreement,
    AgreementError,
    Agreements,
    AgreementVersion,
    load_agreement,
    save_agreement,
    submitted_versions,
)
from trust.stewardship.audit import AuditLog
from trust.stewardship.erasure import Erasure
from trust.stewardship.erasure_notices import ErasureNotices
from trust.stewardship.inbound_retention import InboundRetention
from trust.stewardship.policy import AgreementFollower, Policy
from trust.stewardship.principals import Principal
from trust.stewardship.release_review import (
    ReviewError,
    ReviewReason,
    SubscriptionState,
    request_subscription,
    subscription_states,
)
from trust.stewardship.release_review import approve_subscription as review_approve
from trust.stewardship.retention import RetentionSchedule
from trust.stewardship.revocation import RevocationFollower, revoked_keys
from trust.stewardship.trust_keys import TrustKeyRetirement
from trust.store.errors import VaultKeyMismatch
from trust.store.events import (
    KekRotated,
    SubscriptionRemoved,
    new_event_id,
)
from trust.store.eventstore import EventStore, open_store
from trust.store.vault import Vault, open_vault, rotate_if_due, rotate_kek

if TYPE_CHECKING:
    from trust.linkage.resolver import Resolver


class SetupError(Exception):
    """Something the command needs is not set up yet; the message says which command sets it up."""


# --- trust keys --------------------------------------------------------------------------------


def trust_init(home: Home) -> TrustKeyPair:
    """Create the trust's first encryption key, its release key and its vault KEK (idempotent)."""
    state = TrustKeyState.load(home.trust_key_state)
    if state.active is None:
        key = TrustKeyPair.generate()
        write_trust_key(home.trust_keys, key)
        state.active = key.key_id
        state.held.append(key.key_id)
        state.save(home.trust_key_state)
    releases = KeyStore(home.release_keys, "trust")
    if releases.active() is None:
        releases.create()
    if not home.kek.exists():
        home.kek.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(home.kek, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(32))
        finally:
            os.close(fd)
    return read_trust_key(home.trust_keys / f"{state.active}.x25519.pem")


def rotate_trust_key(home: Home) -> tuple[str, str | None]:
    """Make a new active trust key; the old one stays held for decryption until retired."""
    state = TrustKeyState.load(home.trust_key_state)
    key = TrustKeyPair.generate()
    write_trust_key(home.trust_keys, key)
    old = state.active
    state.active = key.key_id
    state.held.append(key.key_id)
    if old is not None:
        state.replaced_at_ms[old] = int(time.time() * 1000)
    state.save(home.trust_key_state)
    return key.key_id, old


def retire_trust_key(home: Home, key_id: str) -> None:
    """Stop opening envelopes sealed to ``key_id`` and delete its private key file."""
    state = TrustKeyState.load(home.trust_key_state)
    if key_id == state.active:
        raise SetupError("the active trust key cannot be retired: rotate first")
    if key_id not in state.held:
        raise SetupError(f"trust key {key_id} is not held")
    state.held.remove(key_id)
    state.retired.append(key_id)
    state.replaced_at_ms.pop(key_id, None)
    state.save(home.trust_key_state)
    (home.trust_keys / f"{key_id}.x25519.pem").unlink(missing_ok=True)


def trust_key_lifecycle(home: Home) -> TrustKeyState:
    """The trust keys' lifecycle, every key replaced before replacement times were recorded
    given the time it is first seen (its grace starts then)."""
    state = TrustKeyState.load(home.trust_key_state)
    now = int(time.time() * 1000)
    unknown = [k for k in state.held if k != state.active and k not in state.replaced_at_ms]
    if unknown:
        for k in unknown:
            state.replaced_at_ms[k] = now
        state.save(home.trust_key_state)
    return state


def active_trust_public(home: Home) -> TrustPublicKey:
    state = TrustKeyState.load(home.trust_key_state)
    if state.active is None:
        raise SetupError("no trust key: run `tiptrust keys trust-init`")
    return read_trust_public(home.trust_keys / f"{state.active}.x25519.pub.pem")


def held_trust_keys(home: Home) -> list[TrustKeyPair]:
    state = TrustKeyState.load(home.trust_key_state)
    if not state.held:
        raise SetupError("no trust key: run `tiptrust keys trust-init`")
    try:
        return [read_trust_key(home.trust_keys / f"{kid}.x25519.pem") for kid in state.held]
    except KeyFileError as exc:
        raise SetupError(f"a held trust key cannot be read: {exc}") from None


def release_key(home: Home) -> SigningKey:
    """The trust's active release-signing key (as its key folder's lifecycle records it)."""
    try:
        key = KeyStore(home.release_keys, "trust").active()
    except KeyFileError as exc:
        raise SetupError(str(exc)) from None
    if key is None:
        raise SetupError("no release key: run `tiptrust keys trust-init`")
    return key


def release_public_keys(path: Path) -> dict[str, VerifyKey]:
    """The trust release keys a consumer trusts: one PEM file or a folder of ``*.pub.pem``."""
    files = sorted(path.glob("*.pub.pem")) if path.is_dir() else [path]
    try:
        keys = [read_verify_key(f, "trust") for f in files if path.is_dir() or f.exists()]
    except KeyFileError as exc:
        raise SetupError(f"cannot read a trust release public key: {exc}") from None
    if not keys:
        raise SetupError(
            f"no trust release public key at {path}: run `tiptrust keys export-release`"
        )
    return {k.key_id: k for k in keys}


def key_provider(home: Home) -> KeyProvider:
    """Where the vault's key-encryption key comes from (a file now; a KMS later)."""
    return FileKeyProvider(home.kek)


TRUST_KEY_CACHE = 65_536
"""Unwrapped person keys the trust keeps in memory (an AES-GCM key object each, a few MiB)."""


def vault(home: Home, store: EventStore) -> Vault:
    """The store's vault under this home's key-encryption key (finishing an interrupted KEK
    rotation first)."""
    if not home.kek.exists():
        raise SetupError("no vault key: run `tiptrust keys trust-init`")
    try:
        # linkage opens the fields of many candidates per record: keep their keys in memory
        return open_vault(store.engine, key_provider(home), cache_size=TRUST_KEY_CACHE)
    except (KeyFileError, VaultKeyMismatch) as exc:
        raise SetupError(str(exc)) from None


def resolver(
    the_vault: Vault, policy: Policy | None = None, store: EventStore | None = None
) -> Resolver:
    """Linkage in the trust: the model in force (the newest adopted in ``store``, else the
    shipped one), blocking digests keyed by the vault, links limited by the agreements
    (``policy``; None: every source may be linked).

    The linkage libraries (numpy, pandas, the string metrics) load here, in the commands that
    run the trust, not at the CLI's start-up.
    """
    from trust.linkage import KeyedHasher, LinkageSettings, Linker
    from trust.linkage.model import default_model
    from trust.linkage.resolver import Resolver
    from trust.linkage.training import model_in_force

    model = default_model() if store is None else model_in_force(store)
    linker = Linker(LinkageSettings(), model, KeyedHasher(the_vault.linkage_key()))
    return Resolver(the_vault, linker, policy=policy)


# --- sources -----------------------------------------------------------------------------------


def source_init(home: Home, source_id: str) -> SigningKey:
    """The source's signing key (created once) and a copy of the trust's active public key."""
    store = KeyStore(home.source_keys(source_id), source_id)
    try:
        key = store.active() or store.create()
    except KeyFileError as exc:
        raise SetupError(str(exc)) from None
    pub = active_trust_public(home)
    src = home.trust_keys / f"{pub.key_id}.x25519.pub.pem"
    home.source_trust_pub(source_id).write_bytes(src.read_bytes())
    return key


def rotate_source_key(home: Home, source_id: str) -> SigningKey:
    """A new active signing key for the source (the source must have one already)."""
    store = KeyStore(home.source_keys(source_id), source_id)
    try:
        if store.active() is None:
            raise SetupError(f"{source_id} has no signing key: run `tiptrust keys source-init`")
        return store.create()
    except KeyFileError as exc:
        raise SetupError(str(exc)) from None


def source_signing_key(home: Home, source_id: str) -> SigningKey:
    """The source's active signing key (as its key folder's lifecycle records it)."""
    try:
        key = KeyStore(home.source_keys(source_id), source_id).active()
    except KeyFileError as exc:
        raise SetupError(str(exc)) from None
    if key is None:
        raise SetupError(
            f"no signing key for source {source_id}: "
            f"run `tiptrust keys source-init --source {source_id}`"
        )
    return key


def source_trust_key(home: Home, source_id: str) -> TrustPublicKey:
    path = home.source_trust_pub(source_id)
    if not path.exists():
        raise SetupError(
            f"source {source_id} has no trust public key: run `tiptrust keys source-init`"
        )
    return read_trust_public(path)


def message_key_path(h: Home, source: str) -> Path:
    """Where a source keeps the secret of its message keys (32 bytes, mode 0600)."""
    return h.source(source) / "keys" / "message-key.bin"


def source_setup(h: Home, source: str) -> SourceSetup:
    """The source's keys and outbox in this home (the message key is created on first use).

    Raises:
        SetupError: the source's keys are not set up, or its message key is unusable.
    """
    signing_key = source_signing_key(h, source)
    trust_key = source_trust_key(h, source)
    try:
        keyer = load_or_create_keyer(message_key_path(h, source))
    except MessageKeyError as exc:
        raise SetupError(str(exc)) from None
    return SourceSetup(signing_key, trust_key, keyer, h.outbox(source))


def register_source(
    home: Home, source_id: str, public_key_pem: Path, agreement: Agreement | None
) -> VerifyKey:
    """The trust registers a source's public key and, if given, its data-sharing agreement.

    Without an agreement the key is registered but nothing the source sends is accepted until an
    agreement is registered (deny by default).
    """
    validate_name(source_id)
    key = read_verify_key(public_key_pem, source_id)
    d = home.registered(source_id)
    (d / "keys").mkdir(parents=True, exist_ok=True)
    (d / "keys" / f"{key.key_id}.ed25519.pub.pem").write_bytes(public_key_pem.read_bytes())
    if agreement is not None:
        register_agreement(home, agreement)
    return key


def register_agreement(home: Home, agreement: Agreement) -> Path:
    """Keep one version of a source's agreement beside the earlier ones (each stays readable so
    the agreement in force at any time can be found). The same version twice must be identical.
    """
    d = home.registered(agreement.source_id)
    if not (d / "keys").is_dir():
        raise SetupError(f"source {agreement.source_id} is not registered: register its key first")
    path = d / "agreements" / f"v{agreement.version:04d}.yaml"
    if path.exists() and load_agreement(path) != agreement:
        raise SetupError(
            f"agreement version {agreement.version} of {agreement.source_id} is already "
            "registered with different terms: give the new terms a new version"
        )
    save_agreement(path, agreement)
    return path


def trust_keyring(home: Home, store: EventStore | None = None) -> Keyring:
    """Every held trust key and every registered source key, less the keys revoked in
    ``store`` (if given). A key file that cannot be read is an error naming the file, never
    skipped."""
    ring = Keyring(held_trust_keys(home))
    for source_id in home.registered_sources:
        for f in sorted((home.registered(source_id) / "keys").glob("*.pub.pem")):
            try:
                ring.add_source_key(read_verify_key(f, source_id))
            except KeyFileError as exc:
                raise SetupError(f"cannot read the registered key {f}: {exc}") from None
    if store is not None:
        for source_id, key_id in revoked_keys(store):
            ring.revoke_source_key(source_id, key_id)
    return ring


def trust_agreements(home: Home, store: EventStore | None = None) -> Agreements:
    """Every agreement version the trust holds: the signed versions submitted to the store
    (``AgreementSubmitted`` events, :func:`trust.stewardship.agreement.submit_agreement`) and,
    read beside them, the files registered before agreements were events (each version in
    ``trust/sources/<source>/agreements/``, and a first-slice ``agreement.yaml``). The files are
    read, not migrated: they are unsigned, and the trust never makes a signature the source did
    not. A version held both ways must have the same terms (the signed one is used).
    ``store`` None: the home's default store.
    """
    if store is None:
        own = open_store(home.store_url())
        try:
            return trust_agreements(home, own)
        finally:
            own.close()
    try:
        signed = submitted_versions(store)
    except AgreementError as exc:
        raise SetupError(str(exc)) from None
    held = {(v.agreement.source_id, v.agreement.version): v for v in signed}
    found: list[Agreement | AgreementVersion] = list(signed)
    for source_id in home.registered_sources:
        d = home.registered(source_id)
        paths = sorted((d / "agreements").glob("v*.yaml"))
        if (d / "agreement.yaml").exists():
            paths.append(d / "agreement.yaml")
        for path in paths:
            try:
                a = load_agreement(path)
            except AgreementError as exc:
                raise SetupError(str(exc)) from None
            twin = held.get((a.source_id, a.version))
            if twin is None:
                found.append(AgreementVersion(a, "file"))
            elif twin.agreement != a:
                raise SetupError(
                    f"{path}: version {a.version} of {a.source_id} differs from the signed "
                    "version submitted to the store"
                )
    return Agreements(found, default_registry().current("case_record"))


def add_subscription(
    store: EventStore, consumer: str, stream: str, purpose: str, requested_by: str
) -> SubscriptionState:
    """Ask for ``consumer`` to receive ``stream`` for ``purpose`` (an event in the trust's
    store); releases go out once a trustee other than ``requested_by`` approved it
    (:func:`approve_subscription`).

    Raises:
        SetupError: the trust declares no such stream.
        ReviewError: record-level data asked for a non-researcher.
        PrincipalError: the consumer is not a registered receiving principal.
    """
    try:
        return request_subscription(store, consumer, stream, purpose, requested_by)
    except ReviewError as exc:
        if exc.code == ReviewReason.NO_STREAM:
            raise SetupError(str(exc)) from None
        raise


def approve_subscription(
    store: EventStore, consumer: str, stream: str, approver: Principal
) -> SubscriptionState:
    """A trustee other than the requester approves ``consumer``'s subscription to ``stream``.

    Raises:
        ReviewError: see :func:`trust.stewardship.release_review.approve_subscription`.
    """
    return review_approve(store, consumer, stream, approver)


def remove_subscription(store: EventStore, consumer: str, stream: str) -> None:
    """End ``consumer``'s subscription to ``stream``.

    Raises:
        SetupError: there is no such subscription.
    """
    if not any(s.consumer == consumer and s.stream == stream for s in subscription_states(store)):
        raise SetupError(f"{consumer} has no subscription to {stream}")
    store.append(
        [SubscriptionRemoved(new_event_id(), consumer, stream, int(time.time() * 1000))],
        None,
        OPERATOR,
    )


OPERATOR = "trust-operator"
"""The store consumer name of what the operator records (subscriptions)."""


def audit_log(home: Home, the_vault: Vault) -> AuditLog:
    """The trust's audit log (a follower of the store): victim records appear in it only as
    their vault key ids; its checkpoints are signed with the release key."""
    return AuditLog(the_vault.person_key_id, release_key(home))


def _population(home: Home) -> Population | None:
    """The operator's population denominators (rate streams), None when none were given."""
    try:
        return load_population(home.population_dir)
    except PopulationError as exc:
        raise SetupError(
            f"{exc} (give it again: tiptrust trust population FILE --source TEXT)"
        ) from None


def rotate_vault_key(home: Home, store: EventStore) -> int:
    """Replace the vault's key-encryption key (see :func:`trust.store.vault.rotate_kek`),
    recorded as ``KekRotated`` (reason ``operator``)."""
    count = rotate_kek(vault(home, store), key_provider(home))
    _record_rotation(store, count, "operator")
    return count


def rotate_kek_if_due(the_vault: Vault, provider: KeyProvider, store: EventStore) -> int | None:
    """After a shred: the KEK rotation that makes it final, recorded as ``KekRotated`` (reason
    ``erasure``). A crash between the rotation and its record loses the record, never the
    rotation (the vault's rotation state is its own)."""
    count = rotate_if_due(the_vault, provider)
    if count is not None:
        _record_rotation(store, count, "erasure")
    return count


def _record_rotation(store: EventStore, count: int, reason: str) -> None:
    event = KekRotated(
        event_id=new_event_id(),
        rewrapped=count,
        reason=reason,
        rotated_at_ms=time.time_ns() // 1_000_000,
    )
    store.append([event], None, "trust-keys")


# --- the trust service -------------------------------------------------------------------------


def build_trust_runner(
    home: Home,
    log: EventLog,
    store: EventStore,
    *,
    release_every_s: float = 5.0,
    batch: int = 1000,
    retention_every_s: float | None = 3600.0,
) -> TrustRunner:
    """Wire ingest and the release streams for this home's keys, registrations and agreements.

    ``retention_every_s``: how often the trust applies its agreements' retention terms itself,
    and deletes the envelopes it took in from the inbound log once past their retention (None:
    never; an operator then runs ``tiptrust trust retention --apply``)."""

    policy = Policy(trust_agreements(home, store))
    the_vault = vault(home, store)
    keyring = trust_keyring(home, store)
    pipeline = IngestPipeline(
        keyring=keyring,
        policy=policy,
        registry=default_registry(),
        vault=the_vault,
    )
    worker = IngestWorker(log=log, store=store, pipeline=pipeline, poll_max=batch)
    key = release_key(home)
    linkage = resolver(the_vault, policy, store)
    stages = [
        ReleaseStage(
            store=store,
            signer=ReleaseSigner(key),
            policy=policy,
            streams=STREAMS,
            upstream=[linkage],
            linkage_model=linkage.model_version,
            record_key_secret=record_key_secret(the_vault),
            population=_population(home),
        )
    ]
    inbound = (
        None
        if retention_every_s is None
        else InboundRetention(log, store, lambda: policy.agreements, every_s=retention_every_s)
    )
    # after the log forgot what it took in: replaced trust keys nothing on it needs are destroyed
    retirement = (
        None
        if retention_every_s is None
        else TrustKeyRetirement(
            log,
            store,
            keyring,
            lambda: trust_key_lifecycle(home),
            functools.partial(retire_trust_key, home),
            every_s=retention_every_s,
        )
    )
    publisher = ReleasePublisher(log)
    return TrustRunner(
        worker=worker,
        releases=stages,
        send_releases=functools.partial(follow, store, publisher),
        # linkage first: a withdrawal unlinks the record before its key is shredded
        # the audit log last: it then audits what the others decided in the same round
        followers=[
            AgreementFollower(policy),  # first: versions submitted meanwhile apply to the rest
            RevocationFollower(keyring),  # and keys revoked meanwhile sign nothing more
            linkage,
            Erasure(the_vault),
            ReceiptPublisher(log, key),
            ErasureNotices(store, log, key),  # after linkage: its unlinks name the erasures
            publisher,
            audit_log(home, the_vault),
        ],
        # retention's disposals go first, so linkage and erasure act on them in the same round
        before_follow=[]
        if retention_every_s is None
        else [
            RetentionSchedule(
                store, lambda: policy.agreements, the_vault, every_s=retention_every_s
            )
        ],
        # a shred is final once the KEK that wrapped older copies of the key is gone, and once
        # the log no longer keeps the envelope the trust's key would open
        after_follow=[
            functools.partial(rotate_kek_if_due, the_vault, key_provider(home), store),
            *([] if inbound is None else [inbound]),
            *([] if retirement is None else [retirement]),
        ],
        at_stop=[] if inbound is None else [inbound.run_now],
        release_every_s=release_every_s,
    )
