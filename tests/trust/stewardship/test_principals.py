"""Principals, roles and tokens: a token proves exactly one principal, is kept only as a keyed
hash, stops working when revoked, and each role may take only the actions of its row."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import MetaData, select

from trust.follow import follow
from trust.stewardship import audit
from trust.stewardship.principals import (
    RULES,
    AccessDenied,
    AccessReason,
    Action,
    Principal,
    PrincipalError,
    Role,
    add_principal,
    authenticate,
    authorize,
    bootstrap_custodian,
    find,
    new_token,
    parse_token,
    principals,
    require,
    require_receiver,
    revoke_principal,
)
from trust.store.events import PrincipalAdded
from trust.store.eventstore import EventStore
from trust.store.projections import snapshot


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def _secret(token: str) -> str:
    return parse_token(token)[1]


def _denied(code: AccessReason, call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(AccessDenied) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.code is code
    return str(caught.value)


def test_a_token_proves_its_principal_and_nothing_else(backend_store: EventStore) -> None:
    first = bootstrap_custodian(backend_store, "operator")
    assert first is not None and bootstrap_custodian(backend_store, "someone") is None
    steward = add_principal(
        backend_store, "police-steward", Role.DATA_STEWARD, source="police", added_by="operator"
    )
    assert authenticate(backend_store, first.token).role is Role.CUSTODIAN
    me = authenticate(backend_store, steward.token)
    assert (me.name, me.role, me.source) == ("police-steward", Role.DATA_STEWARD, "police")

    token_id, secret = parse_token(steward.token)
    wrong = f"tt1.{token_id}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    _denied(AccessReason.UNKNOWN_TOKEN, authenticate, backend_store, wrong)
    _denied(AccessReason.UNKNOWN_TOKEN, authenticate, backend_store, new_token())
    _denied(AccessReason.NO_TOKEN, authenticate, backend_store, None)
    said = _denied(AccessReason.MALFORMED_TOKEN, authenticate, backend_store, "hunter2-secret")
    assert "hunter2" not in said  # a refusal never repeats what it was given


def test_tokens_are_kept_nowhere_in_the_store(backend_store: EventStore) -> None:
    issued = [
        bootstrap_custodian(backend_store, "operator"),
        add_principal(backend_store, "ministry", Role.CONSUMER, added_by="operator"),
    ]
    secrets_ = [_secret(t.token) for t in issued if t is not None]
    assert len(secrets_) == 2
    tables = MetaData()
    tables.reflect(backend_store.engine)
    seen: list[str] = []
    with backend_store.engine.connect() as conn:
        for table in tables.sorted_tables:
            for row in conn.execute(select(table)):
                seen.extend(str(v) for v in row)
    dump = "\n".join(seen)
    assert "ministry" in dump  # the principal is there …
    assert [s for s in secrets_ if s in dump] == []  # … its token is not
    (added,) = [ev for _, ev in backend_store.read() if isinstance(ev, PrincipalAdded)][1:]
    assert "token=" not in repr(added) and added.token_hash not in repr(added)


def test_a_revoked_token_is_refused_and_a_new_one_works(store: EventStore) -> None:
    boot = bootstrap_custodian(store, "operator")
    assert boot is not None
    old = add_principal(store, "ministry", Role.CONSUMER, added_by="operator")
    revoke_principal(store, "ministry", revoked_by="operator")
    said = _denied(AccessReason.REVOKED, authenticate, store, old.token)
    assert "ministry" in said
    again = add_principal(store, "ministry", Role.CONSUMER, added_by="operator")
    assert authenticate(store, again.token).name == "ministry"
    _denied(AccessReason.UNKNOWN_TOKEN, authenticate, store, old.token)
    assert [p.name for p in principals(store)] == ["ministry", "operator"]


def test_add_and_revoke_refuse_what_cannot_be(store: EventStore) -> None:
    bootstrap_custodian(store, "operator")
    add_principal(store, "ministry", Role.CONSUMER, added_by="operator")
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: add_principal(store, "ministry", Role.CONSUMER, added_by="x"), "name_taken"),
        (lambda: add_principal(store, "Bad Name", Role.TRUSTEE, added_by="x"), "bad_name"),
        (lambda: add_principal(store, "steward", Role.DATA_STEWARD, added_by="x"), "source_mismatch"),
        (lambda: add_principal(store, "t", Role.TRUSTEE, source="police", added_by="x"), "bad_name"),
        (lambda: add_principal(store, "tee", Role.TRUSTEE, source="police", added_by="x"), "source_mismatch"),
        (lambda: revoke_principal(store, "nobody", revoked_by="operator"), "unknown_principal"),
        (lambda: revoke_principal(store, "operator", revoked_by="operator"), "last_custodian"),
    ]  # fmt: skip
    for call, code in cases:
        with pytest.raises(PrincipalError) as caught:
            call()
        assert caught.value.code == code
    add_principal(store, "second", Role.CUSTODIAN, added_by="operator")
    revoke_principal(store, "operator", revoked_by="second")  # another custodian remains
    with pytest.raises(PrincipalError, match="already revoked"):
        revoke_principal(store, "operator", revoked_by="second")


@pytest.mark.parametrize(("action", "role"), list(itertools.product(Action, Role)))
def test_each_role_takes_only_the_actions_of_its_row(action: Action, role: Role) -> None:
    p = Principal("someone", role, "police" if role is Role.DATA_STEWARD else None)
    if role in RULES[action]:
        assert authorize(p, action, source="police", consumer="someone") is p
    else:
        said = _denied(AccessReason.WRONG_ROLE, authorize, p, action, source="police")
        assert role.value in said and action.value.replace("_", " ") in said


def test_a_steward_acts_for_its_own_source_and_a_consumer_receives_as_itself() -> None:
    steward = Principal("police-steward", Role.DATA_STEWARD, "police")
    authorize(steward, Action.ACT_FOR_SOURCE, source="police")
    _denied(AccessReason.OTHER_SOURCE, authorize, steward, Action.ACT_FOR_SOURCE, source="ngo")
    researcher = Principal("uni", Role.RESEARCHER)
    authorize(researcher, Action.RECEIVE_RELEASES, consumer="uni")
    _denied(
        AccessReason.OTHER_CONSUMER, authorize, researcher, Action.RECEIVE_RELEASES, consumer="x"
    )


def test_a_subscription_names_a_registered_consumer(store: EventStore) -> None:
    bootstrap_custodian(store, "operator")
    add_principal(store, "ministry", Role.CONSUMER, added_by="operator")
    add_principal(store, "uni", Role.RESEARCHER, added_by="operator")
    add_principal(store, "overseer", Role.TRUSTEE, added_by="operator")
    assert require_receiver(store, "ministry").role is Role.CONSUMER
    assert require_receiver(store, "uni").role is Role.RESEARCHER
    for name, code in (("journalist", "unregistered_consumer"), ("overseer", "not_a_consumer")):
        with pytest.raises(PrincipalError) as caught:
            require_receiver(store, name)
        assert caught.value.code == code
    revoke_principal(store, "ministry", revoked_by="operator")
    with pytest.raises(PrincipalError, match="not a registered consumer"):
        require_receiver(store, "ministry")


def test_principals_are_events_the_projection_rebuilds_and_the_audit_log_records(
    store: EventStore,
) -> None:
    boot = bootstrap_custodian(store, "operator")
    assert boot is not None
    add_principal(store, "ministry", Role.CONSUMER, added_by="operator")
    revoke_principal(store, "ministry", revoked_by="operator")
    before = snapshot(store.engine)["proj_principals"]
    store.rebuild_projections()
    assert snapshot(store.engine)["proj_principals"] == before and len(before) == 2
    follow(store, audit.AuditLog(lambda s, c, v: f"{s}/{c}/{v}"))
    kinds = [orjson.loads(line)["kind"] for line in list(audit.export_lines(store.engine))[:-1]]
    assert kinds == ["PrincipalAdded", "PrincipalAdded", "PrincipalRevoked"]
    assert find(store, "ministry") is not None and find(store, "nobody") is None
    assert require(store, boot.token, Action.MANAGE_PRINCIPALS).name == "operator"


def test_a_token_given_by_the_operator_is_adopted_once(store: EventStore) -> None:
    mine = "tt1.0123456789abcdef." + "s" * 43
    boot = bootstrap_custodian(store, "operator", mine)
    assert boot is not None and boot.token == mine
    assert authenticate(store, mine).name == "operator"
    assert bootstrap_custodian(store, "operator", new_token()) is None


@given(st.text(max_size=120))
def test_parse_token_refuses_anything_but_a_token(text: str) -> None:
    try:
        token_id, secret = parse_token(text)
    except AccessDenied as exc:
        assert exc.code is AccessReason.MALFORMED_TOKEN
        assert len(text) < 20 or text not in str(exc)  # never echoed
    else:
        assert text.strip() == f"tt1.{token_id}.{secret}" and len(secret) >= 43


@given(st.integers(min_value=0, max_value=20))
def test_new_tokens_parse_and_differ(_: int) -> None:
    a, b = new_token(), new_token()
    assert a != b and parse_token(a)[0] != parse_token(b)[0]
    assert len(parse_token(a)[1]) == 43
