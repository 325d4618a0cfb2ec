"""The simulated agencies: reproducible, varied, overlapping with dependence, noisy."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import pytest

from producers.mapping import Mapping
from producers.readers import read_rows
from producers.simulate import SOURCES, SimulationSummary, simulate
from producers.simulate.faults import bad_rows
from producers.simulate.noise import VARIANTS, ascii_fold


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationSummary]:
    out = tmp_path_factory.mktemp("sim")
    return out, simulate(5, 2000, out)


def truth(root: Path) -> list[dict[str, str]]:
    with (root / "truth.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = (simulate(s, 400, tmp_path / n) for s, n in ((1, "a"), (1, "b"), (2, "c")))
    assert a.rows == b.rows
    fa, fb, fc = files(a.out_dir), files(b.out_dir), files(c.out_dir)
    assert fa == fb
    assert set(fa) == set(fc)
    assert fa["truth.csv"] != fc["truth.csv"]
    assert fa["police/records.csv"] != fc["police/records.csv"]


def test_five_agencies_with_different_sizes(sim: tuple[Path, SimulationSummary]) -> None:
    root, summary = sim
    assert summary.persons == 2000
    assert 0 < summary.events < summary.persons
    assert set(summary.rows) == set(SOURCES) == {
        "police", "ngo_haven", "labour_inspectorate", "nrm", "court",
    }  # fmt: skip
    assert len(set(summary.rows.values())) == len(SOURCES)
    for source in SOURCES:
        assert re.fullmatch(r"[a-z][a-z0-9_-]{1,62}", source)
        assert (root / source / "mapping.yaml").is_file()
        assert sum(1 for _ in read_rows(root / source / "records.csv")) == summary.rows[source]
    # formality differs: different columns and code values for the same concepts
    headers = {
        s: (root / s / "records.csv").read_text("utf-8-sig").split("\n", 1)[0] for s in SOURCES
    }
    assert len(set(headers.values())) == len(SOURCES)


def test_truth_rows_match_exports(sim: tuple[Path, SimulationSummary]) -> None:
    root, summary = sim
    rows = truth(root)
    per_source: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        per_source[r["source"]].append(int(r["row"]))
    for source in SOURCES:
        assert per_source[source] == list(range(1, summary.rows[source] + 1))


def test_lists_overlap_and_depend_on_each_other(sim: tuple[Path, SimulationSummary]) -> None:
    root, summary = sim
    sources_of: dict[str, set[str]] = defaultdict(set)
    for r in truth(root):
        sources_of[r["true_person_id"]].add(r["source"])
    assert sum(len(s) >= 2 for s in sources_of.values()) > 100
    everyone = summary.persons
    nrm = sum("nrm" in s for s in sources_of.values())
    police = [s for s in sources_of.values() if "police" in s]
    p_nrm = nrm / everyone
    p_nrm_given_police = sum("nrm" in s for s in police) / len(police)
    assert p_nrm_given_police > 1.5 * p_nrm
    # courts only see persons the police investigated
    assert all("police" in s for s in sources_of.values() if "court" in s)
    # coverage differs by form: the labour inspectorate sees few persons, the NRM many
    count = {src: sum(src in s for s in sources_of.values()) for src in SOURCES}
    assert count["nrm"] > count["police"] > count["court"]


def test_names_of_the_same_person_vary_between_sources(sim: tuple[Path, SimulationSummary]) -> None:
    root, _ = sim
    person_of = {(r["source"], int(r["row"])): r["true_person_id"] for r in truth(root)}
    names: dict[str, set[str]] = defaultdict(set)
    raw: dict[str, set[str]] = defaultdict(set)
    missing_dob = 0
    for source in SOURCES:
        m = Mapping.load(root / source / "mapping.yaml")
        given = next(f.column for f in m.fields if f.target.name == "given_names")
        dob = next(f.column for f in m.fields if f.target.name == "date_of_birth")
        for row in read_rows(root / source / "records.csv"):
            pid = person_of[(source, row.number)]
            value = row.values[given]
            assert value is not None
            raw[pid].add(value)
            names[pid].add(ascii_fold(value).casefold())
            missing_dob += row.values[dob] is None
    # beyond case and diacritics: transliteration variants and typos
    assert sum(len(v) > 1 for v in names.values()) > 20
    variants = {(k.casefold(), x.casefold()) for k, xs in VARIANTS.items() for x in xs}
    assert any(pair <= v for v in names.values() for pair in map(set, variants))
    assert sum(len(v) > 1 for v in raw.values()) > sum(len(v) > 1 for v in names.values())
    assert missing_dob > 0


def test_bad_rows_corrupts_exactly_n_distinct_rows(
    sim: tuple[Path, SimulationSummary], tmp_path: Path
) -> None:
    root, _ = sim
    src = root / "police" / "records.csv"
    out = tmp_path / "police" / "records.csv"
    faults = bad_rows(src, out, 12, seed=9)
    assert len({f.row for f in faults}) == 12
    assert {f.kind for f in faults} == {
        "unknown_code",
        "bad_date",
        "out_of_range",
        "missing_victim_id",
    }
    before, after = list(read_rows(src)), list(read_rows(out))
    changed = [a.number for a, b in zip(before, after, strict=True) if a.values != b.values]
    assert changed == sorted(f.row for f in faults)
    assert bad_rows(src, tmp_path / "again.csv", 12, seed=9) == faults
    with pytest.raises(ValueError):
        bad_rows(src, tmp_path / "x.csv", len(before) + 1, seed=1)


def test_each_agency_has_its_agreement_beside_its_export(
    sim: tuple[Path, SimulationSummary],
) -> None:
    import yaml

    root, _ = sim
    for source in SOURCES:
        text = (root / source / "agreement.yaml").read_text(encoding="utf-8")
        assert text == (
            "format: 1\n"
            f"source_id: {source}\n"
            "version: 1\n"
            "in_force_from: '2000-01-01'\n"
            "in_force_until: null\n"
            "fields_shared: ['$']\n"
            "releases_allowed:\n"
            "  - consumer: ministry\n"
            "    purposes: [statistics]\n"
            "min_cell_size: 10\n"
        )
        assert yaml.safe_load(text) == {
            "format": 1,
            "source_id": source,
            "version": 1,
            "in_force_from": "2000-01-01",
            "in_force_until": None,
            "fields_shared": ["$"],
            "releases_allowed": [{"consumer": "ministry", "purposes": ["statistics"]}],
            "min_cell_size": 10,
        }
