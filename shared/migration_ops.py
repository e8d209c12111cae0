"""Schema changes that several Alembic revisions make alike, of one service or several.

Every function here is frozen: a revision that calls it must run the same DDL for as long as
databases migrated by it exist, so a function is never edited once a revision calls it. A
changed design is a new function (``create_outbox_v2``) that only new revisions call. Each
``create_*`` has the ``drop_*`` of its revision's downgrade. The trigger SQL they take from
``shared.tombstones`` is frozen for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.tombstones import refusal_function_sql, refusal_trigger_sql


def create_outbox_v1(schema: str) -> None:
    """The transactional outbox (``shared.outbox.outbox_table``): events written in the
    transaction of their change, published and later deleted by the worker."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema=schema,
    )
    # What the dispatcher publishes next, and what its retention deletes.
    for name, column, where in (
        ("ix_outbox_unsent", "id", "sent_at IS NULL"),
        ("ix_outbox_sent_at", "sent_at", "sent_at IS NOT NULL"),
    ):
        op.create_index(
            name,
            "outbox",
            [column],
            unique=False,
            schema=schema,
            postgresql_where=sa.text(where),
        )


def drop_outbox_v1(schema: str) -> None:
    op.drop_index("ix_outbox_sent_at", table_name="outbox", schema=schema)
    op.drop_index("ix_outbox_unsent", table_name="outbox", schema=schema)
    op.drop_table("outbox", schema=schema)


def create_processed_events_v1(schema: str, name: str = "processed_events") -> None:
    """The ids of the events a consumer has applied (``shared.events.processed_events_table``):
    one table per consumed stream."""
    op.create_table(
        name,
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f(f"pk_{name}")),
        schema=schema,
    )


def create_account_deletion_v1(schema: str, user_tables: Iterable[str]) -> None:
    """``deleted_subjects`` (``shared.tombstones``), the ``processed_events`` of the
    ``user.deleted`` consumer, and the trigger refusing a deleted subject's new rows on each
    of ``user_tables``."""
    op.create_table(
        "deleted_subjects",
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column(
            "deleted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_deleted_subjects")),
        schema=schema,
    )
    create_processed_events_v1(schema)
    op.execute(refusal_function_sql(schema))
    create_refusal_triggers_v1(schema, user_tables)


def drop_account_deletion_v1(schema: str, user_tables: Iterable[str]) -> None:
    drop_refusal_triggers_v1(schema, user_tables)
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".refuse_deleted_subject()')
    op.drop_table("processed_events", schema=schema)
    op.drop_table("deleted_subjects", schema=schema)


def create_refusal_triggers_v1(schema: str, tables: Iterable[str]) -> None:
    """The refusing trigger on tables created after ``create_account_deletion_v1``."""
    for table in tables:
        op.execute(refusal_trigger_sql(schema, table))


def drop_refusal_triggers_v1(schema: str, tables: Iterable[str]) -> None:
    for table in tables:
        op.execute(f'DROP TRIGGER IF EXISTS refuse_deleted_subject ON "{schema}"."{table}"')
