"""messages.state: what an assistant message waits for, as data

Before this revision the rules agent told where a conversation stood by the wording of its
last reply. The backfill gives every stored assistant message that was waiting for something
its state, read once from those old wordings, so a conversation stored before the upgrade goes
on where it stood: "what should the new task be called?" waits for a title; "I found N
tasks ... Which one did you mean?" waits for a choice among the listed ids, for the command
of the user message before it (read with the parser of this release; a message it cannot read
leaves the state empty, and the answer is then read as a new message).
"""

import json
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"

# The replies as revisions 0001-0002 of the agent worded them.
OLD_ASK_TITLE = "Sure — what should the new task be called?"
OLD_ASK_WHICH = "Which one did you mean? You can answer with its number."
_CANDIDATE = re.compile(r"^• (\d+): ", re.MULTILINE)


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="chat",
    )
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE chat.messages SET state = CAST(:state AS jsonb) "
            "WHERE role = 'assistant' AND content = :content"
        ),
        {
            "state": json.dumps({"awaiting": "title", "command": {"action": "add_task"}}),
            "content": OLD_ASK_TITLE,
        },
    )
    rows = bind.execute(
        sa.text(
            "SELECT m.id, m.content, m.created_at, "
            "  (SELECT u.content FROM chat.messages u WHERE u.conversation_id = m.conversation_id"
            "   AND u.role = 'user' AND u.id < m.id ORDER BY u.id DESC LIMIT 1) AS asked "
            "FROM chat.messages m WHERE m.role = 'assistant' AND m.content LIKE :pattern"
        ),
        {"pattern": "%" + OLD_ASK_WHICH},
    ).all()
    for message_id, content, created_at, asked in rows:
        state = _choice_state(content, asked, created_at)
        if state is not None:
            bind.execute(
                sa.text("UPDATE chat.messages SET state = CAST(:state AS jsonb) WHERE id = :id"),
                {"state": json.dumps(state), "id": message_id},
            )


def _choice_state(content: str, asked: str | None, created_at: datetime) -> dict[str, Any] | None:
    candidates = [int(found) for found in _CANDIDATE.findall(content)][:100]
    if not candidates or not asked:
        return None
    try:
        from chat_service.agents.language import understand
        from chat_service.agents.rules import pending_command

        when = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
        command = understand(asked, now=when, tz=ZoneInfo("UTC"))
        changes = {"complete", "delete", "update", "reopen"}
        pending = pending_command(command) if command.intent.value in changes else None
    except Exception:  # the parser of a later release: the state stays empty
        pending = None
    if pending is None:
        return None
    return {
        "awaiting": "choice",
        "candidates": candidates,
        "command": pending.model_dump(mode="json"),
    }


def downgrade() -> None:
    op.drop_column("messages", "state", schema="chat")
