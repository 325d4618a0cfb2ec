"""Data-sharing agreements, minimal form: which source may send, when, which fields, to whom.

The stewardship issue completes this (purposes and the firewall, consent, retention, budgets,
signed versions loaded as events). For the vertical slice an agreement is a YAML file per source:

```yaml
source_id: police
version: 1
in_force_from: 2024-01-01      # inclusive
in_force_until: null           # exclusive; null = open-ended
fields_shared: ["$.event", "$.victims[].sex", ...]   # allow-list of field paths (prefixes)
consumers_allowed: [ministry]
min_cell_size: 10
```
Fields not shared are dropped at ingest (minimisation), whatever the source sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from schemas.codec import WireSchema
from schemas.errors import ContractError, ReasonCode
from schemas.fields import Pruner

_KEYS = {
    "source_id",
    "version",
    "in_force_from",
    "in_force_until",
    "fields_shared",
    "consumers_allowed",
    "min_cell_size",
}


class AgreementError(Exception):
    """An agreement file is malformed (names the file and key, not values)."""

    code = "bad_agreement"


class NoAgreement(ContractError):
    """No agreement in force covers this source at this time."""

    code = ReasonCode.NO_AGREEMENT


@dataclass(frozen=True)
class Agreement:
    source_id: str
    version: int
    in_force_from: dt.date
    in_force_until: dt.date | None
    fields_shared: tuple[str, ...]
    consumers_allowed: tuple[str, ...]
    min_cell_size: int = 10

    def in_force(self, at: dt.date) -> bool:
        return self.in_force_from <= at and (
            self.in_force_until is None or at < self.in_force_until
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "agreement") -> Agreement:
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise AgreementError(f"{where}: unknown keys {', '.join(unknown)}")
        try:
            until = data.get("in_force_until")
            return cls(
                source_id=str(data["source_id"]),
                version=int(data.get("version", 1)),
                in_force_from=_date(data["in_force_from"]),
                in_force_until=_date(until) if until is not None else None,
                fields_shared=tuple(str(f) for f in data.get("fields_shared", ["$"])),
                consumers_allowed=tuple(str(c) for c in data.get("consumers_allowed", [])),
                min_cell_size=int(data.get("min_cell_size", 10)),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise AgreementError(
                f"{where}: missing or malformed {exc.__class__.__name__}"
            ) from None

    def to_mapping(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "version": self.version,
            "in_force_from": self.in_force_from.isoformat(),
            "in_force_until": self.in_force_until.isoformat() if self.in_force_until else None,
            "fields_shared": list(self.fields_shared),
            "consumers_allowed": list(self.consumers_allowed),
            "min_cell_size": self.min_cell_size,
        }


def _date(v: Any) -> dt.date:
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v))


def load_agreement(path: Path) -> Agreement:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise AgreementError(f"{path}: not a mapping")
    return Agreement.from_mapping(data, str(path))


def save_agreement(path: Path, agreement: Agreement) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(agreement.to_mapping(), sort_keys=False), encoding="utf-8")


class Agreements:
    """The agreements in force, by source, with a compiled field pruner for each."""

    def __init__(self, agreements: Iterable[Agreement], case_schema: WireSchema) -> None:
        self._by_source: dict[str, list[Agreement]] = {}
        self._pruners: dict[tuple[str, int], Pruner] = {}
        for a in agreements:
            self._by_source.setdefault(a.source_id, []).append(a)
            self._pruners[(a.source_id, a.version)] = Pruner(case_schema, a.fields_shared)

    def in_force(self, source_id: str, at: dt.date) -> Agreement:
        for a in sorted(self._by_source.get(source_id, []), key=lambda a: -a.version):
            if a.in_force(at):
                return a
        raise NoAgreement("no data-sharing agreement in force for this source at this time")

    def for_sources(self, sources: Iterable[str]) -> list[Agreement]:
        """The latest agreement version of each named source that has one."""
        return [
            max(self._by_source[s], key=lambda a: a.version)
            for s in sources
            if s in self._by_source
        ]

    def pruner(self, agreement: Agreement) -> Pruner:
        return self._pruners[(agreement.source_id, agreement.version)]

    @property
    def sources(self) -> list[str]:
        return sorted(self._by_source)
