"""Population denominators for rate streams (``sdg_16_2_2``): the operator's population CSV.

The operator provides one CSV with the header ``year,sex,age_group,population`` (any column
order, nothing else) and states where the numbers come from (e.g. "National statistics office,
mid-year population estimates 2024"). Each row is the population of one year, sex and age group:

- ``year``: a whole year (the range a record's year of exploitation may have);
- ``sex``: a sex category the rate streams publish, other than ``Unknown`` (``Feminine``,
  ``Masculine``, ``OtherGenderIdentity``), or ``Total``;
- ``age_group``: an age band other than ``Unknown`` (``0-11`` … ``45+``), a parent of the
  age hierarchy (``0-17``, ``18+``), or ``Total``;
- ``population``: a whole number of persons, at least 1.

A population not given is derived where it can be: a parent age group is the sum of its children,
``Total`` age the sum of ``0-17`` and ``18+``, ``Total`` sex the sum over the sexes the file gives.
A row given for a parent (or a total) must equal the sum of its children when those are given
too. Every problem is reported at once, by row number and column, never with the value.

On disk (the trust's home, see :func:`population_paths`): ``population.csv`` beside
``population.source.txt`` holding the statement of source. :func:`save_population` checks a file
before it replaces the one in force, so the trust never holds a population it cannot read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from schemas.rules import ADULT_BAND_UNKNOWN, MINOR_BAND_UNKNOWN, RANGES
from trust.release.categories import TOTAL, UNKNOWN, Classification
from trust.release.errors import ReleaseError
from trust.release.streams import AGE_GROUP, SEX

COLUMNS: tuple[str, ...] = ("year", "sex", "age_group", "population")
#: The largest population one row may state (a plausibility limit, above any country's).
MAX_POPULATION = 10_000_000_000
MAX_SOURCE_CHARS = 500
MAX_ROWS = 100_000
_YEAR_MIN, _YEAR_MAX = RANGES["$.event.year_of_exploitation"]

CSV_NAME = "population.csv"
SOURCE_NAME = "population.source.txt"


@dataclass(frozen=True)
class PopulationProblem:
    """One problem of a population file: the row (1 = the header) and column, what was
    expected (never the value found)."""

    row: int
    column: str
    expected: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column}" if self.column else "")
        return f"{where}: expected {self.expected}"


class PopulationError(ReleaseError):
    """A population file or statement of source that cannot be used; ``problems`` lists every
    problem found, by row and column."""

    code = "invalid_population"

    def __init__(self, problems: Sequence[PopulationProblem]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(str(p) for p in self.problems[:20])
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        super().__init__(f"population file refused: {shown}{more}")


def _sex_codes(sex: Classification) -> tuple[str, ...]:
    return tuple(c.code for c in sex.categories if c.code != UNKNOWN)


#: Age categories without a population of their own: not recorded, and persons known only to be
#: a child or an adult (their band unknown) — a population is by band.
_NO_POPULATION = frozenset({UNKNOWN, MINOR_BAND_UNKNOWN, ADULT_BAND_UNKNOWN})


def _age_children(age: Classification) -> dict[str, tuple[str, ...]]:
    """Each age node's children that have a population, :data:`TOTAL` included (its children:
    the top nodes)."""
    children = {
        parent: tuple(c for c in kids if c not in _NO_POPULATION)
        for parent, kids in age.hierarchy()
    }
    below = {c for kids in children.values() for c in kids}
    nodes = [c.code for c in age.categories if c.code not in _NO_POPULATION] + list(children)
    children[TOTAL] = tuple(n for n in nodes if n not in below)
    return children


@dataclass(frozen=True)
class Population:
    """Persons per (year, sex, age group) as the operator gave them, with its source."""

    source: str
    rows: Mapping[tuple[str, str, str], int]
    digest: str  # SHA-256 (hex) of the source statement and the file's bytes
    sexes: tuple[str, ...] = field(default=_sex_codes(SEX))
    age_children: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType(_age_children(AGE_GROUP))
    )

    @cached_property
    def _given_sexes(self) -> tuple[str, ...]:
        given = {s for _, s, _ in self.rows}
        return tuple(s for s in self.sexes if s in given)

    def years(self) -> tuple[str, ...]:
        return tuple(sorted({y for y, _, _ in self.rows}))

    def denominator(self, year: str, sex: str, age_group: str) -> int | None:
        """The population of ``year``, ``sex`` and ``age_group`` (``Total`` for all), as
        given or derived from the rows; None when it cannot be known."""
        return self._derive(year, sex, age_group, use_row=True)

    def _derive(self, year: str, sex: str, age: str, *, use_row: bool) -> int | None:
        if use_row and (year, sex, age) in self.rows:
            return self.rows[(year, sex, age)]
        kids = self.age_children.get(age)
        if kids:
            parts = [self._derive(year, sex, kid, use_row=True) for kid in kids]
            if all(p is not None for p in parts):
                return sum(p for p in parts if p is not None)
        if sex == TOTAL and self._given_sexes:
            by_sex = [self._derive(year, s, age, use_row=True) for s in self._given_sexes]
            if all(p is not None for p in by_sex):
                return sum(p for p in by_sex if p is not None)
        return None

    def inconsistencies(self) -> list[tuple[str, str, str]]:
        """The rows of a parent or total that differ from the sum of their given children."""
        return [
            key
            for key, n in self.rows.items()
            if (derived := self._derive(*key, use_row=False)) is not None and derived != n
        ]


def parse_population(data: bytes, source: str) -> Population:
    """The population in a CSV file's bytes (UTF-8, a byte-order mark allowed) with its
    statement of ``source``.

    Raises:
        PopulationError: listing every problem, by row and column.
    """
    problems: list[PopulationProblem] = []
    statement = source.strip()
    if not statement or len(statement) > MAX_SOURCE_CHARS or _has_control(statement):
        problems.append(
            PopulationProblem(
                0, "source", f"a statement of source of 1-{MAX_SOURCE_CHARS} characters, one line"
            )
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PopulationError([*problems, PopulationProblem(1, "", "UTF-8 text")]) from None
    if "\x00" in text:
        raise PopulationError([*problems, PopulationProblem(1, "", "text without NUL bytes")])
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise PopulationError([*problems, PopulationProblem(1, "", "a header row")]) from None
    except csv.Error:
        raise PopulationError([*problems, PopulationProblem(1, "", "a CSV header")]) from None
    if sorted(header) != sorted(COLUMNS):
        problems.append(PopulationProblem(1, "", "the columns " + ", ".join(COLUMNS)))
        raise PopulationError(problems)
    at = {name: header.index(name) for name in COLUMNS}
    sexes = _sex_codes(SEX)
    ages = tuple(_age_children(AGE_GROUP))
    age_nodes = (*(c.code for c in AGE_GROUP.categories if c.code not in _NO_POPULATION), *ages)
    rows: dict[tuple[str, str, str], int] = {}
    first_row: dict[tuple[str, str, str], int] = {}
    line = 1
    try:
        for line, record in enumerate(reader, start=2):
            if line - 1 > MAX_ROWS:
                problems.append(PopulationProblem(line, "", f"at most {MAX_ROWS} rows"))
                break
            if not any(cell.strip() for cell in record):
                continue  # a blank line
            if len(record) != len(header):
                problems.append(PopulationProblem(line, "", f"{len(header)} fields"))
                continue
            got = {name: record[at[name]].strip() for name in COLUMNS}
            row_problems = _check_row(line, got, sexes, age_nodes)
            if row_problems:
                problems.extend(row_problems)
                continue
            key = (got["year"], got["sex"], got["age_group"])
            if key in rows:
                problems.append(
                    PopulationProblem(
                        line, "", f"one row per year, sex and age group (also row {first_row[key]})"
                    )
                )
                continue
            rows[key] = int(got["population"])
            first_row[key] = line
    except csv.Error:
        problems.append(PopulationProblem(line + 1, "", "a well-formed CSV row"))
    if not rows and not problems:
        problems.append(PopulationProblem(2, "", "at least one row"))
    digest = hashlib.sha256(statement.encode("utf-8") + b"\x00" + data).hexdigest()
    population = Population(statement, MappingProxyType(rows), digest)
    for key in population.inconsistencies():
        problems.append(
            PopulationProblem(
                first_row[key], "population", "the sum of the rows of its sexes or age groups"
            )
        )
    if problems:
        raise PopulationError(sorted(problems, key=lambda p: (p.row, p.column)))
    return population


def _check_row(
    line: int, got: Mapping[str, str], sexes: Iterable[str], ages: Iterable[str]
) -> list[PopulationProblem]:
    out = []
    year = got["year"]
    if not (year.isascii() and year.isdigit() and _YEAR_MIN <= int(year) <= _YEAR_MAX):
        out.append(PopulationProblem(line, "year", f"a year from {_YEAR_MIN} to {_YEAR_MAX}"))
    sex_codes = (*sexes, TOTAL)
    if got["sex"] not in sex_codes:
        out.append(PopulationProblem(line, "sex", "one of " + ", ".join(sex_codes)))
    age_codes = tuple(ages)
    if got["age_group"] not in age_codes:
        out.append(PopulationProblem(line, "age_group", "one of " + ", ".join(age_codes)))
    n = got["population"]
    if not (n.isascii() and n.isdigit() and 1 <= int(n) <= MAX_POPULATION):
        out.append(
            PopulationProblem(line, "population", f"a whole number from 1 to {MAX_POPULATION}")
        )
    return out


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


# -- on disk ------------------------------------------------------------------------------------


def population_paths(folder: Path) -> tuple[Path, Path]:
    """The population CSV and its statement of source in ``folder`` (the trust home's
    ``trust/population/``)."""
    return folder / CSV_NAME, folder / SOURCE_NAME


def load_population(folder: Path) -> Population | None:
    """The population in force in ``folder``; None when the operator has given none.

    Raises:
        PopulationError: the files are there but cannot be used (one without the other, or
            a file that no longer parses).
    """
    csv_path, source_path = population_paths(folder)
    if not csv_path.exists() and not source_path.exists():
        return None
    if not csv_path.exists() or not source_path.exists():
        raise PopulationError(
            [PopulationProblem(0, "", f"both {CSV_NAME} and {SOURCE_NAME} in the folder")]
        )
    return parse_population(csv_path.read_bytes(), source_path.read_text(encoding="utf-8"))


def save_population(folder: Path, data: bytes, source: str) -> Population:
    """Check a population file and its source, then make them the ones in force in ``folder``
    (each written to a temporary file and renamed into place).

    Raises:
        PopulationError: the file or the source cannot be used; nothing is written.
    """
    population = parse_population(data, source)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, source_path = population_paths(folder)
    _replace(source_path, (population.source + "\n").encode("utf-8"))
    _replace(csv_path, data)
    return population


def _replace(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
