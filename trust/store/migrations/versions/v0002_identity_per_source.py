"""identity per source, follower positions, subscriptions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

- ``accepted_event_ids`` is keyed by (source_id, event_id): a source can no longer claim another
  source's event ids. Existing rows take their source from the stored event they point at.
- ``proj_persons`` is keyed by (source_id, case_id, victim_id) as columns; the ``:``-joined
  ``person_id`` (where ``CR:2024:7``/``V1`` and ``CR:2024``/``7:V1`` collided) is gone.
- ``proj_rejections.source_id`` may be empty: a message on a topic that names no valid source.
- ``follower_positions``: the last stored seq each follower has handled. The old receipt cursor
  (consumer ``trust-receipts`` in ``positions``, topic ``stored_events``) becomes the receipt
  publisher's position; releases already in the store were published before they were recorded
  (the old order), so the release publisher starts after them.
- ``release_person_cells`` / ``release_cell_counts``: the release stage's own projection of
  counted persons per cell (filled by its follower from position 0 on the first run);
- ``stored_events.body`` / ``body_schema``: accepted case records are stored as Avro bytes with
  the writer schema's fingerprint (earlier rows keep their JSON and are upcast on reading);
- ``proj_subscriptions``: the subscriptions in force; ``proj_releases`` is keyed by (consumer,
  stream, sequence) — releases made before subscriptions have consumer ``''``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PERSON_COLUMNS = (
    "source_id, case_id, victim_id, sex, age_at_identification, age_group, "
    "forms_of_exploitation, year_of_exploitation, consent_withdrawn, disposed, retracted"
)


def _persons_table() -> None:
    op.create_table(
        "proj_persons",
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
        sa.PrimaryKeyConstraint("source_id", "case_id", "victim_id", name=op.f("pk_proj_persons")),
    )


def upgrade() -> None:
    with op.batch_alter_table("stored_events") as batch:
        batch.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("body_schema", sa.LargeBinary(), nullable=True))

    # accepted ids: copy aside with their source, recreate with the composite key, copy back
    op.execute(
        "CREATE TABLE tmp_accepted_event_ids AS SELECT e.source_id AS source_id, "
        "a.event_id AS event_id, a.seq AS seq FROM accepted_event_ids a "
        "JOIN stored_events e ON e.seq = a.seq"
    )
    op.drop_table("accepted_event_ids")
    op.create_table(
        "accepted_event_ids",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "event_id", name=op.f("pk_accepted_event_ids")),
    )
    op.execute(
        "INSERT INTO accepted_event_ids (source_id, event_id, seq) "
        "SELECT source_id, event_id, seq FROM tmp_accepted_event_ids"
    )
    op.drop_table("tmp_accepted_event_ids")

    # persons: the same, dropping the joined person_id
    op.execute(f"CREATE TABLE tmp_proj_persons AS SELECT {_PERSON_COLUMNS} FROM proj_persons")
    op.drop_index("ix_proj_persons_case", table_name="proj_persons")
    op.drop_table("proj_persons")
    _persons_table()
    op.execute(
        f"INSERT INTO proj_persons ({_PERSON_COLUMNS}) SELECT {_PERSON_COLUMNS} "
        "FROM tmp_proj_persons"
    )
    op.drop_table("tmp_proj_persons")

    with op.batch_alter_table("proj_rejections") as batch:
        batch.alter_column("source_id", existing_type=sa.String(length=128), nullable=True)

    op.execute(
        "CREATE TABLE tmp_proj_releases AS SELECT stream, sequence, release_id, issued_at_ms, "
        "cells_digest FROM proj_releases"
    )
    op.drop_table("proj_releases")
    op.create_table(
        "proj_releases",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=255), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("release_id", sa.String(length=64), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("cells_digest", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "stream", "sequence", name=op.f("pk_proj_releases")),
    )
    op.execute(
        "INSERT INTO proj_releases (consumer, stream, sequence, release_id, issued_at_ms, "
        "cells_digest) SELECT '', stream, sequence, release_id, issued_at_ms, cells_digest "
        "FROM tmp_proj_releases"
    )
    op.drop_table("tmp_proj_releases")
    op.create_table(
        "proj_subscriptions",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("added_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "stream", name=op.f("pk_proj_subscriptions")),
    )

    op.create_table(
        "release_person_cells",
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=255), nullable=False),
        sa.Column("victim_id", sa.String(length=255), nullable=False),
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
    op.create_table(
        "follower_positions",
        sa.Column("follower", sa.String(length=64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.String(length=64), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("follower", name=op.f("pk_follower_positions")),
    )
    op.execute(
        "INSERT INTO follower_positions (follower, last_seq) "
        "SELECT 'trust-receipts', next_offset - 1 FROM positions "
        "WHERE consumer = 'trust-receipts' AND topic = 'stored_events' AND partition = 0"
    )
    op.execute(
        "INSERT INTO follower_positions (follower, last_seq) "
        "SELECT 'trust-release-publisher', MAX(seq) FROM stored_events "
        "WHERE event_type = 'ReleaseIssued' HAVING MAX(seq) IS NOT NULL"
    )
    op.execute("DELETE FROM positions WHERE consumer = 'trust-receipts'")


def downgrade() -> None:
    with op.batch_alter_table("stored_events") as batch:
        batch.drop_column("body_schema")
        batch.drop_column("body")
    op.drop_table("follower_positions")
    op.drop_table("release_cell_counts")
    op.drop_table("release_person_cells")
    op.drop_table("proj_subscriptions")
    op.execute(
        "CREATE TABLE tmp_proj_releases AS SELECT stream, sequence, release_id, issued_at_ms, "
        "cells_digest FROM proj_releases WHERE consumer = ''"
    )
    op.drop_table("proj_releases")
    op.create_table(
        "proj_releases",
        sa.Column("stream", sa.String(length=255), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("release_id", sa.String(length=64), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("cells_digest", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("stream", "sequence", name=op.f("pk_proj_releases")),
    )
    op.execute(
        "INSERT INTO proj_releases SELECT stream, sequence, release_id, issued_at_ms, "
        "cells_digest FROM tmp_proj_releases"
    )
    op.drop_table("tmp_proj_releases")
    with op.batch_alter_table("proj_rejections") as batch:
        batch.alter_column("source_id", existing_type=sa.String(length=128), nullable=False)
    # persons and accepted ids cannot go back to the joined, global keys without losing what
    # made them safe; the projections are rebuilt from the store after a downgrade.
    op.drop_table("proj_persons")
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
    op.execute(
        "CREATE TABLE tmp_accepted_event_ids AS SELECT event_id, seq FROM accepted_event_ids"
    )
    op.drop_table("accepted_event_ids")
    op.create_table(
        "accepted_event_ids",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_accepted_event_ids")),
    )
    op.execute(
        "INSERT INTO accepted_event_ids (event_id, seq) SELECT MIN(event_id), MIN(seq) "
        "FROM tmp_accepted_event_ids GROUP BY event_id"
    )
    op.drop_table("tmp_accepted_event_ids")
