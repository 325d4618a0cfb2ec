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


#: The modules whose tests take longest, with about how many seconds all their tests take (from
#: ``pytest --durations``, rounded). A tuple is one unit: modules that share a per-process fixture
#: (the e2e ``published`` template), kept on one worker so that it is built once.
SLOW_MODULES: tuple[tuple[tuple[str, ...], float], ...] = (
    (("tests/e2e/test_trust_crash.py", "tests/e2e/test_release_crash.py"), 110),
    (("tests/e2e/test_demo.py",), 70),
    (("tests/trust/linkage/test_determinism.py",), 22),
    (("tests/trust/linkage/test_compare_ahead.py",), 12),
    (("tests/trust/release/test_differencing.py",), 19),
    (("tests/transport/test_agreement.py",), 19),
    (("tests/e2e/test_publish.py",), 18),
    (("tests/e2e/test_ingest_workers.py",), 17),
    (("tests/trust/store/test_projection_agreement.py",), 17),
    (("tests/e2e/test_link_review.py",), 15),
    (("tests/tiptrust/cli/test_link_review.py",), 14),
    (("tests/tiptrust/cli/test_mse_from_trust.py",), 12),
    (("tests/trust/release/disclosure/test_secondary.py",), 11),
    (("tests/e2e/test_trust_policy.py",), 11),
    (("tests/e2e/test_trust_run.py",), 10),
    (("tests/trust/synthesize/test_companion_protected.py",), 9),
    (("tests/e2e/test_backup.py",), 8),
    (("tests/e2e/test_wire_privacy.py",), 8),
    (("tests/trust/release/disclosure/test_audit.py",), 8),
    (("tests/consumers/test_sequence_conflict.py",), 6),
    (("tests/trust/release/disclosure/test_audit_hints.py",), 6),
    (("tests/trust/release/test_differencing_noise.py",), 6),
    (("tests/e2e/test_upgrade.py",), 5),
    (("tests/e2e/test_inbound_retention.py",), 4),
    (("tests/e2e/test_revoke_key.py",), 4),
    (("tests/trust/estimate/test_prevalence.py",), 4),
)


def _worker_count(config: pytest.Config) -> int:
    """How many ``pytest -n`` workers run the tests (1 without xdist, or in its controller)."""
    workerinput = getattr(config, "workerinput", None)
    return int(workerinput["workercount"]) if workerinput else 1


def slow_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """``items`` in the order that lets ``workers`` xdist workers finish together.

    ``--dist worksteal`` gives worker k the k-th contiguous part of the collection (``len //
    workers`` tests, the last the rest), and a worker that runs out takes half of what another has
    not started yet, from its end. So the slow units (:data:`SLOW_MODULES`) are shared among the
    parts, the longest first to the part with the least so far, and each part starts with its
    share: every worker starts on slow tests, and what is stolen at the end is short. A module's
    tests stay together, in collection order (a module-scoped fixture is set up once). Scheduling
    only: every test still runs.
    """
    unit_of = {path: i for i, (paths, _) in enumerate(SLOW_MODULES) for path in paths}
    by_unit: dict[int, list[pytest.Item]] = {}
    rest: list[pytest.Item] = []
    for item in items:
        unit = unit_of.get(item.nodeid.split("::", 1)[0])
        if unit is None:
            rest.append(item)
        else:
            by_unit.setdefault(unit, []).append(item)
    sizes: list[int] = []  # what worksteal sends each worker first
    for k in range(max(1, workers)):
        sizes.append((len(items) - sum(sizes)) // (max(1, workers) - k))
    parts: list[list[pytest.Item]] = [[] for _ in sizes]
    load = [0.0] * len(parts)
    for unit in sorted(by_unit, key=lambda u: -SLOW_MODULES[u][1]):
        tests = by_unit[unit]
        room = [k for k in range(len(parts)) if len(parts[k]) + len(tests) <= sizes[k]]
        lightest = min(room or range(len(parts)), key=load.__getitem__)
        parts[lightest].extend(tests)
        load[lightest] += SLOW_MODULES[unit][1]
    ordered: list[pytest.Item] = []
    for part, size in zip(parts, sizes, strict=True):
        fill = max(0, size - len(part))
        ordered += part + rest[:fill]
        del rest[:fill]
    return ordered + rest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest modules' tests first, shared among the workers (:func:`slow_first`); without
    ``$TIPTRUST_REAL_KAFKA``, deselect the ``real_kafka`` tests (said once, below)."""
    if _real_kafka_missing():
        dropped = [item for item in items if item.get_closest_marker("real_kafka")]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if not item.get_closest_marker("real_kafka")]
    items[:] = slow_first(items, _worker_count(config))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _real_kafka_missing():
        terminalreporter.write_line(
            f"{REAL_KAFKA_ENV} is not set: real_kafka tests not run "
            "(they need an Apache Kafka bootstrap server or kafka:// URL)"
        )
