"""Record keys follow the stable person id: a merge keeps the survivor's key."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trust.release.cellkeys import RecordKeys, cell_keys, person_cells
from trust.release.disclosure.cellkey import KEY_MODULUS, PerturbationTable
from trust.release.streams import VICTIMS_BY_YEAR_SEX
from trust.store.eventstore import EventStore
from trust.store.tables import release_person_cells

SPEC = VICTIMS_BY_YEAR_SEX
KEYS = RecordKeys(b"k" * 32)


@pytest.fixture
def store(sqlite_store: EventStore) -> EventStore:
    return sqlite_store


def put(store: EventStore, rows: Sequence[tuple[str, tuple[str, ...], str]]) -> None:
    with store.engine.begin() as conn:
        conn.execute(release_person_cells.delete())
        conn.execute(
            release_person_cells.insert(),
            [
                {
                    "stream": SPEC.name,
                    "unit_id": unit,
                    "cell": json.dumps(list(cell)),
                    "sources": sources,
                    "source_id": None,
                    "case_id": None,
                }
                for unit, cell, sources in rows
            ],
        )


@given(st.text(min_size=1, max_size=40))
def test_a_record_key_is_a_keyed_32_bit_function_of_the_unit_id(unit: str) -> None:
    key = KEYS.key(unit)
    assert 0 <= key < KEY_MODULUS and key == RecordKeys(b"k" * 32).key(unit)
    assert repr(KEYS) == "RecordKeys(<secret hidden>)"


def test_a_merge_keeps_the_survivors_key(store: EventStore) -> None:
    cell = ("2023", "Feminine")
    put(store, [("p-1", cell, "a"), ("p-2", cell, "b"), ("p-3", ("2022", "Masculine"), "a")])
    with store.engine.connect() as conn:
        before = cell_keys(conn, SPEC, ["a", "b"], KEYS, {})
    total = (KEYS.key("p-1") + KEYS.key("p-2") + KEYS.key("p-3")) % KEY_MODULUS
    assert before[((), ())] == total
    assert before[(SPEC.dimensions, cell)] == (KEYS.key("p-1") + KEYS.key("p-2")) % KEY_MODULUS
    # linkage merges p-2 into p-1: the person keeps p-1's id, so p-1's key
    put(store, [("p-1", cell, "a;b"), ("p-3", ("2022", "Masculine"), "a")])
    with store.engine.connect() as conn:
        after = cell_keys(conn, SPEC, ["a", "b"], KEYS, {})
        only_a = person_cells(conn, SPEC, ["a"])
    assert after[(SPEC.dimensions, cell)] == KEYS.key("p-1")
    assert after[(("year",), ("2022",))] == before[(("year",), ("2022",))]  # untouched persons
    # a person partly made of b counts from its records of a alone (this store holds none)
    assert set(only_a) == {"p-3"}


CELLS = st.sampled_from([("2023", "Feminine"), ("2023", "Masculine"), ("2022", "Feminine")])


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(CELLS, min_size=2, max_size=12),
    st.data(),
)
def test_after_any_merge_the_person_has_the_survivors_key_and_value(
    store: EventStore, cells: list[tuple[str, str]], data: st.DataObject
) -> None:
    units = [(f"p-{i}", cell, "a") for i, cell in enumerate(cells)]
    survivor = data.draw(st.sampled_from(units))
    absorbed = data.draw(st.sets(st.sampled_from([u for u in units if u != survivor])))
    # linkage merges the absorbed persons into the survivor: one person, the survivor's id, in
    # the cell their combined facts give (here: the survivor's)
    after = [u for u in units if u not in absorbed]
    put(store, after)
    with store.engine.connect() as conn:
        keys = cell_keys(conn, SPEC, ["a"], KEYS, {})
    for cell in {c for _, c, _ in after}:
        expected = sum(KEYS.key(u) for u, c, _ in after if c == cell) % KEY_MODULUS
        assert keys[(SPEC.dimensions, cell)] == expected
    # the survivor's key is the one it had before the merge: alone in a cell, its value too
    alone = [u for u in units if u[1] == survivor[1]] == [survivor]
    if alone:
        ptable = PerturbationTable(1, 2)
        assert keys[(SPEC.dimensions, survivor[1])] == KEYS.key(survivor[0])
        assert ptable.noise(1, keys[(SPEC.dimensions, survivor[1])]) == ptable.noise(
            1, KEYS.key(survivor[0])
        )
