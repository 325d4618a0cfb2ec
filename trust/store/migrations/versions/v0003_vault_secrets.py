"""vault secrets: the person-key-id secret kept wrapped, so the KEK can rotate

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

- ``vault_secrets``: secrets of the vault other than persons' keys, wrapped under the KEK. Until a
  store's first KEK rotation the table is empty and the person-key-id secret is derived from the
  KEK as before; the first rotation stores it here, wrapped under the new KEK, so person key ids
  never change when the KEK does.
- ``person_keys.shredded_at_ms`` is indexed: whether a key was shredded since the last rotation
  is asked after every ingest step, and must not read the whole table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vault_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("rotated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_vault_secrets")),
    )
    op.create_index(
        op.f("ix_person_keys_shredded_at_ms"), "person_keys", ["shredded_at_ms"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_person_keys_shredded_at_ms"), table_name="person_keys")
    op.drop_table("vault_secrets")
