"""audit log: hash-chained, Merkle-committed entries and their signed checkpoints

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

- ``audit_entries``: one entry per audited stored event (canonical JSON without personal data),
  with its hash-chain link. Written by the audit log, a follower of the store, in the
  transaction that records its position; append-only, never emptied or rebuilt.
- ``audit_checkpoints``: the tree head (RFC 6962 root, chain head, right edge) after each batch,
  signed with the trust's release key.

Nothing to fill here: the audit log follows the store from its first event on its next run, so
an existing store's whole history is audited.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("leaf_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_audit_entries")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("signature", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_audit_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_entries")
