"""With only the home folder and the CLI, nobody acts on the trust without a principal's token:
each command that registers, subscribes, decides or sees a review's records, or acts for a
source refuses (exit 7, the reason code) without a token, with a token of the wrong role, and
with a revoked one — and no token is kept anywhere in the home."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tiptrust.cli import app
from tiptrust.cli.common import Exit
from transport import open_log, topics
from trust.store.events import AccessRefused, Event
from trust.store.eventstore import open_store

from .conftest import CUSTODIAN_TOKEN

TOKEN = re.compile(r"tt1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}")
STREAM = "victims_by_year_sex"


def _cli(home: Path, *args: str, token: str | None = None) -> Result:
    """Run a command in ``home`` with ``token`` as TIPTRUST_TOKEN (None: no token at all)."""
    return CliRunner().invoke(app, [*args, "--home", str(home)], env={"TIPTRUST_TOKEN": token})


def _ok(home: Path, *args: str, token: str | None = CUSTODIAN_TOKEN) -> Result:
    done = _cli(home, *args, token=token)
    assert done.exit_code == 0, done.output
    return done


def _add(home: Path, role: str, name: str, *extra: str) -> str:
    added = _ok(home, "principal", "add", "--role", role, "--name", name, *extra, "--json")
    token: str = json.loads(added.stdout)["token"]
    return token


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A trust with police registered and one principal of each role (their tokens by name)."""
    home = tmp_path_factory.mktemp("principals") / "home"
    _ok(home, "keys", "trust-init")  # adopts the custodian token it is given
    for source in ("police", "ngo"):
        _ok(home, "keys", "source-init", "--source", source)
    pub = next((home / "sources" / "police" / "keys").glob("*.pub.pem"))
    _ok(home, "trust", "register", "--source", "police", "--public-key", str(pub))
    tokens = {
        "operator": CUSTODIAN_TOKEN,
        "overseer": _add(home, "trustee", "overseer"),
        "ministry": _add(home, "consumer", "ministry"),
        "uni": _add(home, "researcher", "uni"),
        "police-steward": _add(home, "data_steward", "police-steward", "--source", "police"),
        "ngo-steward": _add(home, "data_steward", "ngo-steward", "--source", "ngo"),
    }
    return home, tokens


@pytest.fixture
def trust(template: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the template's home."""
    home, tokens = template
    shutil.copytree(home, tmp_path / "home")
    return tmp_path / "home", tokens


def _events(home: Path) -> int:
    store = open_store(f"sqlite:///{home / 'trust' / 'store.db'}")
    try:
        return store.last_seq()
    finally:
        store.close()


def _since(home: Path, seq: int) -> list[Event]:
    store = open_store(f"sqlite:///{home / 'trust' / 'store.db'}")
    try:
        return [e for _, e in store.read(seq)]
    finally:
        store.close()


def _inbound(home: Path, source: str) -> int:
    with open_log(f"sqlite:///{home / 'log.db'}") as log:
        return len(log.read_all(topics.inbound(source)))


RECORD_A, RECORD_B = "police/C1/v1", "ngo/C9/v1"

# (command, a principal whose role may not run it, the reason it gets)
ATTEMPTS: list[tuple[tuple[str, ...], str, str]] = [
    (("trust", "register", "--source", "rogue", "--agreement", "a.yaml"), "overseer", "wrong_role"),
    (("trust", "subscription", "add", "--consumer", "ministry", "--stream", STREAM,
      "--purpose", "statistics"), "ministry", "wrong_role"),
    (("trust", "subscription", "remove", "--consumer", "ministry", "--stream", STREAM),
     "police-steward", "wrong_role"),
    (("trust", "subscription", "approve", f"ministry/{STREAM}"), "operator", "wrong_role"),
    (("subscribe", "--stream", STREAM, "--consumer", "ministry", "--out", "OUT"), "uni",
     "other_consumer"),
    (("subscribe", "--stream", STREAM, "--consumer", "ministry", "--out", "OUT"), "operator",
     "wrong_role"),
    (("link", "review", "accept", "R-1"), "overseer", "wrong_role"),
    (("link", "review", "reject", "R-1"), "police-steward", "wrong_role"),
    (("link", "review", "show", "R-1", "--values"), "overseer", "wrong_role"),
    (("link", "separate", RECORD_A, RECORD_B), "ministry", "wrong_role"),
    (("link", "join", RECORD_A, RECORD_B), "police-steward", "wrong_role"),
    (("notify", "--source", "police", "--kind", "retraction", "--case", "C1"), "ngo-steward",
     "other_source"),
    (("notify", "--source", "police", "--kind", "retraction", "--case", "C1"), "operator",
     "wrong_role"),
    (("principal", "add", "--role", "custodian", "--name", "mallory"), "overseer", "wrong_role"),
    (("principal", "revoke", "ministry"), "ministry", "wrong_role"),
    (("principal", "list"), "uni", "wrong_role"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "who", "reason"), ATTEMPTS, ids=[f"{' '.join(a[:3])}-{w}" for a, w, _ in ATTEMPTS]
)
def test_without_a_token_or_with_the_wrong_role_nothing_happens(
    template: tuple[Path, dict[str, str]], args: tuple[str, ...], who: str, reason: str
) -> None:
    home, tokens = template  # refused: nothing changes, so the template itself is used
    before = _events(home), _inbound(home, "police")
    args = tuple(str(home.parent / "out") if a == "OUT" else a for a in args)
    for token, code in ((None, "no_token"), (tokens[who], reason)):
        done = _cli(home, *args, token=token)
        assert done.exit_code == Exit.DENIED, (token, done.output)
        said = " ".join(done.output.split())
        assert f"refused ({code})" in said and "Traceback" not in said
        assert token is None or token not in said  # a token is never echoed
    # the only trace is the two refusals, for the audit log: who (nobody, then `who`) and why
    refusals = _since(home, before[0])
    assert [(type(e), e.principal, e.reason) for e in refusals] == [  # type: ignore[union-attr]
        (AccessRefused, "", "no_token"),
        (AccessRefused, who, reason),
    ]
    assert all(tokens[who] not in repr(e) for e in refusals)
    assert _inbound(home, "police") == before[1]
    assert not (home.parent / "out").exists()


def test_the_right_principal_gets_through(trust: tuple[Path, dict[str, str]]) -> None:
    home, tokens = trust
    sent = _ok(home, "notify", "--source", "police", "--kind", "retraction", "--case", "C1",
               token=tokens["police-steward"])  # fmt: skip
    assert "sent (1 event)" in sent.output and _inbound(home, "police") == 1
    add = ("trust", "subscription", "add", "--consumer", "ministry", "--stream", STREAM)
    _ok(home, *add, "--purpose", "statistics", token=tokens["overseer"])  # a trustee may
    # the consumer passes the check, then learns there is nothing yet (no release was made)
    got = _cli(home, "subscribe", "--stream", STREAM, "--consumer", "ministry", "--out",
               str(home.parent / "out"), token=tokens["ministry"])  # fmt: skip
    assert got.exit_code == Exit.NOT_SET_UP and "nothing to receive" in got.output
    decided = _cli(home, "link", "review", "accept", "R-1", token=tokens["operator"])
    assert decided.exit_code == Exit.USAGE and "no review has this id" in decided.output
    listed = json.loads(_ok(home, "principal", "list", "--json").stdout)
    assert {p["name"]: p["role"] for p in listed}["police-steward"] == "data_steward"
    assert all("token" not in json.dumps(p) for p in listed)


def test_a_subscription_names_a_registered_consumer(trust: tuple[Path, dict[str, str]]) -> None:
    home, _ = trust
    before = _events(home)
    for consumer, code in (("journalist", "unregistered_consumer"), ("overseer", "not_a_consumer")):
        done = _cli(home, "trust", "subscription", "add", "--consumer", consumer, "--stream",
                    STREAM, "--purpose", "statistics", token=CUSTODIAN_TOKEN)  # fmt: skip
        assert done.exit_code == Exit.USAGE and code in done.output, done.output
    assert _events(home) == before


def test_an_unknown_or_malformed_token_is_refused(template: tuple[Path, dict[str, str]]) -> None:
    home, _ = template
    for token, code in (("tt1.0000000000000000." + "x" * 43, "unknown_token"),
                        ("not a token", "malformed_token")):  # fmt: skip
        done = _cli(home, "principal", "list", token=token)
        assert done.exit_code == Exit.DENIED and f"refused ({code})" in done.output
        assert token not in done.output


def test_a_revoked_token_is_refused(trust: tuple[Path, dict[str, str]]) -> None:
    home, tokens = trust
    _ok(home, "principal", "revoke", "police-steward")
    done = _cli(home, "notify", "--source", "police", "--kind", "disposal", "--case", "C1",
                token=tokens["police-steward"])  # fmt: skip
    assert done.exit_code == Exit.DENIED and "refused (revoked)" in done.output
    assert _inbound(home, "police") == 0
    last = _cli(home, "principal", "revoke", "operator", token=CUSTODIAN_TOKEN)
    assert last.exit_code == Exit.USAGE and "last custodian" in last.output


def test_an_operator_name_other_than_the_tokens_is_refused(
    trust: tuple[Path, dict[str, str]],
) -> None:
    home, _ = trust
    done = _cli(home, "link", "join", RECORD_A, RECORD_B, "--operator", "bob",
                token=CUSTODIAN_TOKEN)  # fmt: skip
    assert done.exit_code == Exit.USAGE and "you act as operator" in done.output


def test_trust_init_prints_the_first_token_once_and_no_file_keeps_any(
    trust: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh"
    first = _ok(fresh, "keys", "trust-init", "--name", "root", token=None)
    (token,) = TOKEN.findall(first.stdout)
    again = _ok(fresh, "keys", "trust-init", token=None)
    assert not TOKEN.findall(again.stdout) and "has a custodian" in again.stdout
    (root,) = json.loads(_ok(fresh, "principal", "list", "--json", token=token).stdout)
    assert isinstance(root.pop("added_at_ms"), int)
    assert root == {
        "name": "root",
        "role": "custodian",
        "source": None,
        "added_by": "bootstrap",
        "revoked_at_ms": None,
    }
    home, tokens = trust
    secrets: dict[str, str] = {n: t.rsplit(".", 1)[1] for n, t in tokens.items()}
    secrets["root"] = token.rsplit(".", 1)[1]
    for folder in (home, fresh):
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert any(p.name == "store.db" for p in files)
        for p in files:
            data = p.read_bytes()
            assert [n for n, s in secrets.items() if s.encode() in data] == [], p


def test_a_subscription_goes_out_once_another_trustee_approved_it(
    trust: tuple[Path, dict[str, str]],
) -> None:
    home, tokens = trust
    second = _add(home, "trustee", "second")
    add = ("trust", "subscription", "add", "--consumer", "ministry", "--stream", STREAM)
    asked = _ok(home, *add, "--purpose", "statistics", token=tokens["overseer"])
    assert "awaiting approval" in asked.output

    def listed() -> dict[str, str]:
        rows = json.loads(_ok(home, "trust", "subscription", "list", "--json").stdout)
        return {r["id"]: r["status"] for r in rows}

    assert listed() == {f"ministry/{STREAM}": "awaiting approval"}
    assert "'awaiting approval': 1" in _ok(home, "trust", "status").output  # the operator sees it
    approve = ("trust", "subscription", "approve", f"ministry/{STREAM}")
    own = _cli(home, *approve, token=tokens["overseer"])  # who asked may not approve
    assert own.exit_code == Exit.USAGE and "same_person" in own.output
    bad = _cli(home, "trust", "subscription", "approve", "ministry", token=second)
    assert bad.exit_code == Exit.USAGE and "CONSUMER/STREAM" in bad.output
    assert listed() == {f"ministry/{STREAM}": "awaiting approval"}
    done = _ok(home, *approve, token=second)
    assert "approved" in done.output
    assert listed() == {f"ministry/{STREAM}": "in force"}
