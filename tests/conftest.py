"""Shared fixtures for the whole suite. Keep each fixture small and documented."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator

import pytest

from infra.broker import TansuBroker

REAL_KAFKA_ENV = "TIPTRUST_REAL_KAFKA"


@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    """A memory-only Tansu broker for the whole session (errors, never skips, if missing).

    Its ``url`` carries the client options Tansu needs (``TANSU_CLIENT_OVERRIDES``), so every
    client opened on it, in this process or in a CLI subprocess given ``--log tansu.url``, is fast.
    """
    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def own_tansu() -> Iterator[TansuBroker]:
    """A memory-only Tansu broker for this test alone (it starts in a fraction of a second).

    For tests that run the system on its fixed topic names (``tip.inbound.<source>``, the release
    topics): on the session's broker they would read what another test left on those topics.
    """
    with TansuBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def real_kafka_url() -> str:
    """Bring your own Apache Kafka: the log URL of ``$TIPTRUST_REAL_KAFKA``.

    The variable holds ``host:port[,host:port…]`` or a whole ``kafka://`` URL (with options such
    as ``security.protocol`` in its query); clients use the production defaults. When it is not
    set, the tests marked ``real_kafka`` are deselected (below; no Apache Kafka can run on our
    machines), and a test that asks for this fixture without the marker is skipped.
    """
    given = os.environ.get(REAL_KAFKA_ENV, "").strip()
    if not given:
        pytest.skip(f"{REAL_KAFKA_ENV} is not set (it names an Apache Kafka bootstrap server)")
    return given if "://" in given else f"kafka://{given}"


def unique_name(prefix: str = "t") -> str:
    """A fresh topic/group name, safe for Kafka and for ``transport.topics`` validation."""
    clean = re.sub(r"[^a-z0-9_-]", "-", prefix.lower()).strip("-") or "t"
    return f"{clean[:40]}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def new_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``new_name("orders")`` -> a name unique to this call, prefixed by the test's name."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:24]

    def make(kind: str = "t") -> str:
        return unique_name(f"{base}-{kind}")

    return make


# --- PostgreSQL (trust store) ---------------------------------------------------------------


def _tcp_open(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLAlchemy URL (``postgresql+psycopg://``) of a PostgreSQL database for the session.

    ``TIPTRUST_TEST_POSTGRES_URL`` when set; else a fresh database on 127.0.0.1:5432 (user
    ``postgres``, trust auth), dropped at the end; else a private ``pgserver``. Never skips.
    """
    import os

    import psycopg

    given = os.environ.get("TIPTRUST_TEST_POSTGRES_URL")
    if given:
        yield re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", given)
        return
    if _tcp_open("127.0.0.1", 5432):
        name = f"tiptrust_test_{uuid.uuid4().hex[:12]}"
        admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    try:
        yield re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", server.get_uri())
    finally:
        server.cleanup()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """``postgres_url`` with a fresh, empty schema first on the search path; dropped after."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:16]}"
    engine = sa.create_engine(postgres_url, hide_parameters=True)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


def _real_kafka_missing() -> bool:
    return not os.environ.get(REAL_KAFKA_ENV, "").strip()


#: The modules whose tests take longest (``pytest --durations``), slowest first. Their tests are
#: started first, so that the workers of ``pytest -n`` finish together instead of one of them
#: running a minute-long test alone at the end. Scheduling only: every test still runs.
SLOW_FIRST = (
    "tests/e2e/test_trust_crash.py",
    "tests/e2e/test_release_crash.py",
    "tests/e2e/test_wire_privacy.py",
    "tests/e2e/test_trust_policy.py",
    "tests/e2e/test_demo.py",
    "tests/e2e/test_trust_run.py",
    "tests/e2e/test_publish.py",
    "tests/e2e/test_upgrade.py",
    "tests/e2e/test_link_review.py",
    "tests/trust/store/test_projection_agreement.py",
    "tests/trust/release/disclosure/test_audit.py",
    "tests/trust/release/test_differencing_noise.py",
    "tests/trust/release/test_differencing.py",
    "tests/tiptrust/cli/test_link_review.py",
    "tests/tiptrust/cli/test_mse_from_trust.py",
    "tests/trust/release/disclosure/test_secondary.py",
    "tests/trust/estimate/test_prevalence.py",
)


def _slow_rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest modules' tests first (:data:`SLOW_FIRST`; a stable sort keeps the order
    within each module); without ``$TIPTRUST_REAL_KAFKA``, deselect the ``real_kafka`` tests
    (said once, below)."""
    items.sort(key=_slow_rank)
    if not _real_kafka_missing():
        return
    dropped = [item for item in items if item.get_closest_marker("real_kafka")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("real_kafka")]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _real_kafka_missing():
        terminalreporter.write_line(
            f"{REAL_KAFKA_ENV} is not set: real_kafka tests not run "
            "(they need an Apache Kafka bootstrap server or kafka:// URL)"
        )
