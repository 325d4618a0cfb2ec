"""principals: who may act on the trust, with a role and a hashed API token

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

- ``proj_principals``: one row per principal name — its role (data steward, custodian, trustee,
  consumer, researcher), the source a data steward answers for, the token's id, salt and keyed
  hash (never the token), who added it and when, and when it was revoked. A projection of the
  ``PrincipalAdded`` / ``PrincipalRevoked`` events (``trust.stewardship.principals``).

Nothing to fill: no store written before this revision holds a principal event. A trust that
upgrades has no principal until ``tiptrust keys trust-init`` makes its first custodian.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "proj_principals",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=True),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("token_salt", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("added_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_proj_principals")),
        sa.UniqueConstraint("token_id", name=op.f("uq_proj_principals_token_id")),
    )


def downgrade() -> None:
    op.drop_table("proj_principals")
