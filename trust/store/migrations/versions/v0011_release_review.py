"""release review: who asked for a subscription, and which trustee approved it for which definition

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

- ``proj_subscriptions.requested_by``, ``request_id``: the principal who asked for the
  subscription and the id of the event that asked (``""`` and NULL for subscriptions added before
  release review); an approval names the request it approves;
- ``approved_by``, ``approved_at_ms``: the trustee who approved it and when (NULL: awaiting
  approval);
- ``definition``: the digest of the stream's definition it was approved for (NULL: approved
  before definitions were recorded, i.e. in force under whatever definition the trust runs).

The subscriptions already in force were added by an operator under the rules of their time: they
stay in force, marked approved by ``(before release review)``. Replaying their events gives the
same rows (an event without ``requested_by`` is read the same way).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRE_REVIEW = "(before release review)"  # trust.stewardship.release_review.PRE_REVIEW


def upgrade() -> None:
    with op.batch_alter_table("proj_subscriptions") as batch:
        batch.add_column(
            sa.Column("requested_by", sa.String(length=64), server_default="", nullable=False)
        )
        batch.add_column(sa.Column("request_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("approved_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("approved_at_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("definition", sa.String(length=64), nullable=True))
    t = sa.table(
        "proj_subscriptions",
        sa.column("approved_by", sa.String()),
        sa.column("approved_at_ms", sa.BigInteger()),
        sa.column("added_at_ms", sa.BigInteger()),
    )
    op.get_bind().execute(t.update().values(approved_by=PRE_REVIEW, approved_at_ms=t.c.added_at_ms))


def downgrade() -> None:
    with op.batch_alter_table("proj_subscriptions") as batch:
        batch.drop_column("definition")
        batch.drop_column("approved_at_ms")
        batch.drop_column("approved_by")
        batch.drop_column("request_id")
        batch.drop_column("requested_by")
