"""initial schema: event store, projections, person keys

Revision ID: 0001
Revises:
Create Date: 2026-11-24

stored_events is append-only; person_keys is the mutable key vault (crypto-shredding).
Keep in step with trust/store/tables.py: a test compares them with autogenerate.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accepted_event_ids",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_accepted_event_ids")),
    )
    op.create_table(
        "person_keys",
        sa.Column("person_key_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("shredded_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("person_key_id", name=op.f("pk_person_keys")),
    )
    op.create_table(
        "positions",
        sa.Column("consumer", sa.String(length=255), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition", name=op.f("pk_positions")),
    )
    op.create_table(
        "proj_persons",
        sa.Column("person_id", sa.String(length=512), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=255), nullable=False),
        sa.Column("victim_id", sa.String(length=255), nullable=False),
        sa.Column("sex", sa.String(length=32), nullable=False),
        sa.Column("age_at_identification", sa.Integer(), nullable=True),
        sa.Column("age_group", sa.String(length=16), nullable=False),
        sa.Column("forms_of_exploitation", sa.Text(), nullable=False),
        sa.Column("year_of_exploitation", sa.Integer(), nullable=True),
        sa.Column("consent_withdrawn", sa.Boolean(), nullable=False),
        sa.Column("disposed", sa.Boolean(), nullable=False),
        sa.Column("retracted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_proj_persons")),
    )
    op.create_index("ix_proj_persons_case", "proj_persons", ["source_id", "case_id"])

    op.create_table(
        "proj_records",
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("retracted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("country", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("source_id", "case_id", name=op.f("pk_proj_records")),
    )
    op.create_table(
        "proj_rejections",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("field_path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_proj_rejections")),
    )
    op.create_table(
        "proj_releases",
        sa.Column("stream", sa.String(length=255), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("release_id", sa.String(length=64), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("cells_digest", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("stream", "sequence", name=op.f("pk_proj_releases")),
    )
    op.create_table(
        "stored_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("source_id", sa.String(length=128), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_stored_events")),
    )


def downgrade() -> None:
    op.drop_table("stored_events")
    op.drop_table("proj_releases")
    op.drop_table("proj_rejections")
    op.drop_table("proj_records")
    op.drop_index("ix_proj_persons_case", table_name="proj_persons")
    op.drop_table("proj_persons")
    op.drop_table("positions")
    op.drop_table("person_keys")
    op.drop_table("accepted_event_ids")
