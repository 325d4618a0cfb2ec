"""privacy ledger: the budget differentially private releases spent, per consumer and source

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

- ``privacy_ledger``: one row per (consumer, source, release) for every release made with a
  differential-privacy method, holding the epsilon and delta it spent. The release stage writes
  it in the same transaction as the release's ``ReleaseIssued`` event and reads the sum per
  (consumer, source) before each release; it is never emptied or rebuilt, so a budget spent stays
  spent. Nothing to fill: no earlier release used a differential-privacy method.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_ledger",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("release_id", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("epsilon", sa.Double(), nullable=False),
        sa.Column("delta", sa.Double(), nullable=False),
        sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "consumer", "source_id", "release_id", name=op.f("pk_privacy_ledger")
        ),
    )


def downgrade() -> None:
    op.drop_table("privacy_ledger")
