"""persons' citizenships and countries of exploitation, for the release streams by country

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

- ``proj_persons.citizenships``: the victim's citizenships (ISO 3166 alpha-2, ``;``-joined and
  sorted, ``Unknown`` left out; ``""`` when none is known);
- ``proj_persons.countries_of_exploitation``: the case's country of exploitation and its list
  of countries of exploitation, the same way.

Both are filled here from each case's latest accepted record in ``stored_events`` (what the
projection would hold had it always had them). The release stage's counts rebuild themselves:
their version follows the streams' declarations, which changed with these columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 1000


def _codes(codes: Iterable[str | None]) -> str:
    return ";".join(sorted({c for c in codes if c and c != "Unknown"}))


def upgrade() -> None:
    op.add_column(
        "proj_persons", sa.Column("citizenships", sa.Text(), server_default="", nullable=False)
    )
    op.add_column(
        "proj_persons",
        sa.Column("countries_of_exploitation", sa.Text(), server_default="", nullable=False),
    )
    _fill()


def _fill() -> None:
    # the stored events' decoder (Avro bodies by their writer schema's fingerprint): the same
    # code that replays them into the projections
    from trust.store.events import RecordAccepted
    from trust.store.stored import read_page

    bind = op.get_bind()
    latest: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
    after = 0
    while True:
        page = read_page(bind, after, _PAGE, types=("RecordAccepted",))
        if not page:
            break
        for _, ev in page:
            if not isinstance(ev, RecordAccepted):
                continue
            record = ev.record
            tip_event = record.get("event") or {}
            countries = _codes(
                [
                    tip_event.get("country_of_exploitation"),
                    *(tip_event.get("countries_of_exploitation") or ()),
                ]
            )
            latest[(ev.source_id, ev.case_id)] = {
                v["victim_id"]: (_codes(v.get("citizenships") or ()), countries)
                for v in record.get("victims") or ()
            }
        after = page[-1][0]
    persons = sa.table(
        "proj_persons",
        sa.column("source_id", sa.String),
        sa.column("case_id", sa.String),
        sa.column("victim_id", sa.String),
        sa.column("citizenships", sa.Text),
        sa.column("countries_of_exploitation", sa.Text),
    )
    rows = [
        {"s": s, "c": c, "v": v, "cit": cit, "cou": cou}
        for (s, c), victims in sorted(latest.items())
        for v, (cit, cou) in sorted(victims.items())
        if cit or cou
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
                citizenships=sa.bindparam("cit"),
                countries_of_exploitation=sa.bindparam("cou"),
            ),
            rows,
        )


def downgrade() -> None:
    with op.batch_alter_table("proj_persons") as batch:
        batch.drop_column("countries_of_exploitation")
        batch.drop_column("citizenships")
