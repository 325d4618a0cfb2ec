"""victims' age ranges and majority status, for releases that place persons known by a band

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

- ``proj_persons.age_range_lower`` / ``age_range_upper``: the victim's age range when the exact
  age is not recorded (an export's band such as ``18--20``; null: open on that side);
- ``proj_persons.majority_status``: ``Adult``, ``Minor`` or ``Unknown``;
- ``proj_persons.age_group`` widens to 32 characters (the leaves ``0-17 band unknown`` and
  ``18+ band unknown``) and is recomputed for every row from its record
  (:func:`schemas.rules.age_group_of`).

The new columns are filled from each case's latest accepted record in ``stored_events`` (what
the projection would hold had it always had them); records written before the case record had
these fields hold none, and keep the age group of their exact age. The release stage's counts
rebuild themselves: their version follows the age groups, which changed with these columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 1000


def upgrade() -> None:
    with op.batch_alter_table("proj_persons") as batch:
        batch.add_column(sa.Column("age_range_lower", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("age_range_upper", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("majority_status", sa.String(16), server_default="Unknown", nullable=False)
        )
        batch.alter_column(
            "age_group",
            existing_type=sa.String(16),
            type_=sa.String(32),
            existing_nullable=False,
        )
    _fill()


def _fill() -> None:
    # the stored events' decoder (Avro bodies by their writer schema's fingerprint): the same
    # code that replays them into the projections
    from schemas.rules import age_group_of
    from trust.store.events import RecordAccepted
    from trust.store.stored import read_page

    bind = op.get_bind()
    latest: dict[tuple[str, str], dict[str, tuple[Any, ...]]] = {}
    after = 0
    while True:
        page = read_page(bind, after, _PAGE, types=("RecordAccepted",))
        if not page:
            break
        for _, ev in page:
            if not isinstance(ev, RecordAccepted):
                continue
            latest[(ev.source_id, ev.case_id)] = {
                v["victim_id"]: (
                    v.get("age_at_identification"),
                    v.get("age_range_lower"),
                    v.get("age_range_upper"),
                    v.get("majority_status") or "Unknown",
                )
                for v in ev.record.get("victims") or ()
            }
        after = page[-1][0]
    persons = sa.table(
        "proj_persons",
        sa.column("source_id", sa.String),
        sa.column("case_id", sa.String),
        sa.column("victim_id", sa.String),
        sa.column("age_range_lower", sa.Integer),
        sa.column("age_range_upper", sa.Integer),
        sa.column("majority_status", sa.String),
        sa.column("age_group", sa.String),
    )
    rows = [
        {
            "s": s,
            "c": c,
            "v": v,
            "lo": lower,
            "hi": upper,
            "ms": status,
            "ag": age_group_of(age, lower, upper, status),
        }
        for (s, c), victims in sorted(latest.items())
        for v, (age, lower, upper, status) in sorted(victims.items())
        if lower is not None or upper is not None or status != "Unknown"
    ]
    if rows:
        bind.execute(
            persons.update()
            .where(
                persons.c.source_id == sa.bindparam("s"),
                persons.c.case_id == sa.bindparam("c"),
                persons.c.victim_id == sa.bindparam("v"),
            )
            .values(
                age_range_lower=sa.bindparam("lo"),
                age_range_upper=sa.bindparam("hi"),
                majority_status=sa.bindparam("ms"),
                age_group=sa.bindparam("ag"),
            ),
            rows,
        )


def downgrade() -> None:
    from schemas.rules import ADULT_BAND_UNKNOWN, MINOR_BAND_UNKNOWN

    persons = sa.table("proj_persons", sa.column("age_group", sa.String))
    op.get_bind().execute(
        persons.update()
        .where(persons.c.age_group.in_((MINOR_BAND_UNKNOWN, ADULT_BAND_UNKNOWN)))
        .values(age_group="Unknown")
    )
    with op.batch_alter_table("proj_persons") as batch:
        batch.alter_column(
            "age_group",
            existing_type=sa.String(32),
            type_=sa.String(16),
            existing_nullable=False,
        )
        batch.drop_column("majority_status")
        batch.drop_column("age_range_upper")
        batch.drop_column("age_range_lower")
