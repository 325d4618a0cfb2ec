"""linkage: persons from linked records; release counts by person

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

- ``proj_person_links``, ``proj_linked_persons``, ``proj_link_reviews``,
  ``proj_link_overrides``: projections of linkage's events (which person each victim record is
  in; every person id issued; the review queue; operators' verdicts on pairs). They fill as
  linkage follows the store.
- ``proj_erasures``: every consent withdrawal and disposal by the victim (or whole case) it
  names, so one that arrives before its case applies when the case arrives; filled here from the
  stored withdrawals and disposals.
- ``link_blocks``, ``link_features``, ``link_terms``: linkage's own index (keyed blocking
  digests), the sealed fields it compares, and name-value frequencies (keyed digests).
- ``release_person_cells`` / ``release_cell_counts`` are re-keyed by person (and the set of
  sources that make each person) instead of by victim record. They are a follower's tables: they
  are dropped and made again empty, and the follower's position is cleared, so the release
  stage rebuilds its counts from the whole store on its next check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RELEASE_COUNTS = "trust-release-counts"


def _victim_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=255), nullable=False),
        sa.Column("victim_id", sa.String(length=255), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "proj_erasures",
        *_victim_columns(),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint(
            "source_id", "case_id", "victim_id", "kind", name=op.f("pk_proj_erasures")
        ),
    )
    _fill_erasures()
    op.create_table(
        "proj_person_links",
        *_victim_columns(),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("linked_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "source_id", "case_id", "victim_id", name=op.f("pk_proj_person_links")
        ),
    )
    op.create_index(
        op.f("ix_proj_person_links_person_id"), "proj_person_links", ["person_id"], unique=False
    )
    op.create_table(
        "proj_linked_persons",
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("merged_into", sa.String(length=64), nullable=True),
        sa.Column("created_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_proj_linked_persons")),
    )
    op.create_table(
        "proj_link_reviews",
        sa.Column("review_id", sa.String(length=64), nullable=False),
        *_victim_columns(),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("candidates", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("review_id", name=op.f("pk_proj_link_reviews")),
    )
    op.create_table(
        "proj_link_overrides",
        sa.Column("record", sa.String(length=700), nullable=False),
        sa.Column("other", sa.String(length=700), nullable=False),
        sa.Column("same", sa.Boolean(), nullable=False),
        sa.Column("decided_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("record", "other", name=op.f("pk_proj_link_overrides")),
    )
    op.create_table(
        "link_blocks",
        sa.Column("block_key", sa.String(length=64), nullable=False),
        *_victim_columns(),
        sa.PrimaryKeyConstraint(
            "block_key", "source_id", "case_id", "victim_id", name=op.f("pk_link_blocks")
        ),
    )
    op.create_index(
        "ix_link_blocks_record",
        "link_blocks",
        ["source_id", "case_id", "victim_id"],
        unique=False,
    )
    op.create_table(
        "link_terms",
        sa.Column("column", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("column", "digest", name=op.f("pk_link_terms")),
    )
    op.create_table(
        "link_features",
        *_victim_columns(),
        sa.Column("person_key_id", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "case_id", "victim_id", name=op.f("pk_link_features")),
    )

    op.drop_table("release_person_cells")
    op.drop_table("release_cell_counts")
    op.create_table(
        "release_person_cells",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.String(length=700), nullable=False),
        sa.Column("cell", sa.Text(), nullable=False),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=True),
        sa.Column("case_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("stream", "unit_id", name=op.f("pk_release_person_cells")),
    )
    op.create_index(
        "ix_release_person_cells_case",
        "release_person_cells",
        ["source_id", "case_id"],
        unique=False,
    )
    op.create_table(
        "release_cell_counts",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("sources", sa.String(length=1024), nullable=False),
        sa.Column("cell", sa.String(length=512), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "sources", "cell", name=op.f("pk_release_cell_counts")),
    )
    follower_positions = sa.table("follower_positions", sa.column("follower", sa.String))
    op.execute(follower_positions.delete().where(follower_positions.c.follower == _RELEASE_COUNTS))


def _fill_erasures() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT event_type, payload FROM stored_events "
            "WHERE event_type IN ('ConsentWithdrawn', 'DisposalRequested')"
        )
    ).all()
    seen: set[tuple[str, str, str, str]] = set()
    for event_type, payload in rows:
        ev = json.loads(payload)
        kind = "consent_withdrawn" if event_type == "ConsentWithdrawn" else "disposed"
        seen.add((ev["source_id"], ev["case_id"], ev.get("victim_id") or "", kind))
    if seen:
        table = sa.table(
            "proj_erasures",
            sa.column("source_id", sa.String),
            sa.column("case_id", sa.String),
            sa.column("victim_id", sa.String),
            sa.column("kind", sa.String),
        )
        op.bulk_insert(
            table,
            [
                {"source_id": s, "case_id": c, "victim_id": v, "kind": k}
                for s, c, v, k in sorted(seen)
            ],
        )


def downgrade() -> None:
    # linkage's decisions stay in stored_events; only their projections and linkage's index go
    op.drop_table("release_cell_counts")
    op.drop_index("ix_release_person_cells_case", table_name="release_person_cells")
    op.drop_table("release_person_cells")
    op.create_table(
        "release_person_cells",
        *_victim_columns(),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("cell", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "source_id", "case_id", "victim_id", "stream", name=op.f("pk_release_person_cells")
        ),
    )
    op.create_table(
        "release_cell_counts",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("cell", sa.String(length=512), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "source_id", "cell", name=op.f("pk_release_cell_counts")),
    )
    follower_positions = sa.table("follower_positions", sa.column("follower", sa.String))
    op.execute(follower_positions.delete().where(follower_positions.c.follower == _RELEASE_COUNTS))
    op.drop_table("link_features")
    op.drop_table("link_terms")
    op.drop_index("ix_link_blocks_record", table_name="link_blocks")
    op.drop_table("link_blocks")
    op.drop_table("proj_link_overrides")
    op.drop_table("proj_link_reviews")
    op.drop_table("proj_linked_persons")
    op.drop_index(op.f("ix_proj_person_links_person_id"), table_name="proj_person_links")
    op.drop_table("proj_person_links")
    op.drop_table("proj_erasures")
