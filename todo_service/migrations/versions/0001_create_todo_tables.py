"""create todo tables"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None


COUNT_TRIGGER_FUNCTION = """
CREATE FUNCTION todo.count_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE todo.task_counts
           SET total = total - 1, completed = completed - OLD.completed::int
         WHERE user_id = OLD.user_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO todo.task_counts AS counts (user_id, total, completed)
        VALUES (NEW.user_id, 1, NEW.completed::int)
        ON CONFLICT (user_id) DO UPDATE
           SET total = counts.total + 1, completed = counts.completed + NEW.completed::int;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    # Trigram indexes serve the case-insensitive substring search (`q`). Creating an extension
    # needs the migration role's privileges, never the service's.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("user_id", "key", name=op.f("uq_idempotency_keys_user_id_key")),
        schema="todo",
    )
    op.create_index(
        "ix_idempotency_keys_expires_at",
        "idempotency_keys",
        ["expires_at"],
        unique=False,
        schema="todo",
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("completed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "priority",
            sa.Enum("low", "medium", "high", name="task_priority", schema="todo"),
            server_default="medium",
            nullable=False,
        ),
        sa.Column(
            "tags", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "recurrence",
            sa.Enum("none", "daily", "weekly", "monthly", name="task_recurrence", schema="todo"),
            server_default="none",
            nullable=False,
        ),
        sa.Column("next_occurrence_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("cardinality(tags) <= 10", name=op.f("ck_tasks_tags_count")),
        sa.CheckConstraint(
            "char_length(title) BETWEEN 1 AND 200", name=op.f("ck_tasks_title_length")
        ),
        sa.CheckConstraint(
            "completed = (completed_at IS NOT NULL)", name=op.f("ck_tasks_completed_at_set")
        ),
        sa.CheckConstraint(
            "description IS NULL OR char_length(description) <= 1000",
            name=op.f("ck_tasks_description_length"),
        ),
        sa.ForeignKeyConstraint(
            ["next_occurrence_id"],
            ["todo.tasks.id"],
            name=op.f("fk_tasks_next_occurrence_id_tasks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("next_occurrence_id", name=op.f("uq_tasks_next_occurrence_id")),
        schema="todo",
    )
    op.create_table(
        "task_counts",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("total", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("completed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_task_counts")),
        schema="todo",
    )
    # Every write to tasks, whoever makes it, keeps task_counts exact in the same transaction.
    op.execute(COUNT_TRIGGER_FUNCTION)
    op.execute(
        "CREATE TRIGGER tasks_count_insert AFTER INSERT ON todo.tasks "
        "FOR EACH ROW EXECUTE FUNCTION todo.count_tasks()"
    )
    op.execute(
        "CREATE TRIGGER tasks_count_delete AFTER DELETE ON todo.tasks "
        "FOR EACH ROW EXECUTE FUNCTION todo.count_tasks()"
    )
    op.execute(
        "CREATE TRIGGER tasks_count_update AFTER UPDATE OF user_id, completed ON todo.tasks "
        "FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id "
        "OR OLD.completed IS DISTINCT FROM NEW.completed) "
        "EXECUTE FUNCTION todo.count_tasks()"
    )
    op.create_index(
        "ix_tasks_search_trgm",
        "tasks",
        ["title", "description"],
        unique=False,
        schema="todo",
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops", "description": "gin_trgm_ops"},
    )
    # Keyset pagination: one index per sort order of the list, (user_id, its key, id).
    for sort, key in (
        ("created", "created_at"),
        ("due", sa.literal_column("coalesce(due_at, 'infinity'::timestamptz)")),
        ("priority", "priority"),
        ("title", sa.literal_column("lower(title)")),
        ("updated", "updated_at"),
    ):
        op.create_index(
            f"ix_tasks_user_{sort}", "tasks", ["user_id", key, "id"], unique=False, schema="todo"
        )


def downgrade() -> None:
    for sort in ("updated", "title", "priority", "due", "created"):
        op.drop_index(f"ix_tasks_user_{sort}", table_name="tasks", schema="todo")
    op.drop_index(
        "ix_tasks_search_trgm",
        table_name="tasks",
        schema="todo",
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops", "description": "gin_trgm_ops"},
    )
    op.drop_table("tasks", schema="todo")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys", schema="todo")
    op.drop_table("idempotency_keys", schema="todo")
    op.drop_table("task_counts", schema="todo")
    op.execute("DROP FUNCTION IF EXISTS todo.count_tasks()")
    op.execute("DROP TYPE IF EXISTS todo.task_recurrence")
    op.execute("DROP TYPE IF EXISTS todo.task_priority")
    # pg_trgm stays: other schemas of the database may use it.
