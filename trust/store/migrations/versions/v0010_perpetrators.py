"""perpetrator records, for the release streams about perpetrators

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

- ``proj_perpetrators``: one row per perpetrator record of an accepted case, keyed by (source,
  case, perpetrator id): its roles in the trafficking process (``;``-joined, sorted), the case's
  year of exploitation, and the flags ``retracted`` (with its case) and ``disposed`` (the whole
  case was disposed of, in this or an earlier version).

Filled here from the stored events as the projection would hold it had it always had it: each
case's latest accepted version's perpetrators, retracted when a retraction followed it, disposed
when a whole-case disposal came at any time before or after. The release stage's counts rebuild
themselves: their version follows the streams' declarations, which changed with this table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 1000


def upgrade() -> None:
    op.create_table(
        "proj_perpetrators",
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=255), nullable=False),
        sa.Column("perpetrator_id", sa.String(length=255), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("year_of_exploitation", sa.Integer(), nullable=True),
        sa.Column("disposed", sa.Boolean(), nullable=False),
        sa.Column("retracted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "source_id", "case_id", "perpetrator_id", name=op.f("pk_proj_perpetrators")
        ),
    )
    _fill()


def _fill() -> None:
    # the stored events' decoder (Avro bodies by their writer schema's fingerprint): the same
    # code that replays them into the projections
    from trust.store.events import DisposalRequested, RecordAccepted, RecordRetracted
    from trust.store.stored import read_page

    bind = op.get_bind()
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    disposed: set[tuple[str, str]] = set()
    after = 0
    types = ("RecordAccepted", "RecordRetracted", "DisposalRequested")
    while True:
        page = read_page(bind, after, _PAGE, types=types)
        if not page:
            break
        for _, ev in page:
            if isinstance(ev, RecordAccepted):
                key = (ev.source_id, ev.case_id)
                year = (ev.record.get("event") or {}).get("year_of_exploitation")
                rows[key] = {
                    p["perpetrator_id"]: {
                        "roles": ";".join(sorted(set(p.get("roles") or ()))),
                        "year_of_exploitation": year,
                        "retracted": False,
                    }
                    for p in ev.record.get("perpetrators") or ()
                    if isinstance(p.get("perpetrator_id"), str) and p["perpetrator_id"]
                }
            elif isinstance(ev, RecordRetracted):
                for row in rows.get((ev.source_id, ev.case_id), {}).values():
                    row["retracted"] = True
            elif isinstance(ev, DisposalRequested) and ev.victim_id is None:
                disposed.add((ev.source_id, ev.case_id))
        after = page[-1][0]
    table = sa.table(
        "proj_perpetrators",
        sa.column("source_id", sa.String),
        sa.column("case_id", sa.String),
        sa.column("perpetrator_id", sa.String),
        sa.column("roles", sa.Text),
        sa.column("year_of_exploitation", sa.Integer),
        sa.column("disposed", sa.Boolean),
        sa.column("retracted", sa.Boolean),
    )
    out = [
        {
            "source_id": s,
            "case_id": c,
            "perpetrator_id": pid,
            **row,
            "disposed": (s, c) in disposed,
        }
        for (s, c), case in sorted(rows.items())
        for pid, row in sorted(case.items())
    ]
    for i in range(0, len(out), _PAGE):
        bind.execute(table.insert(), out[i : i + _PAGE])


def downgrade() -> None:
    op.drop_table("proj_perpetrators")
