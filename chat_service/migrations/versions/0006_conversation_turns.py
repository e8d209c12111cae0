"""the number of turns a conversation holds, for its bound on messages

A turn is let in only while the conversation has room for its message and its reply
(``CHAT_MAX_MESSAGES_PER_CONVERSATION``): the statement storing the user's message checks and
counts ``turns`` on the conversation's row it locks, so concurrent turns cannot both take the
last room (docs/chat.md). Existing conversations are counted from their user messages.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

SCHEMA = "chat"


def upgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("turns", sa.Integer(), nullable=False, server_default=sa.text("0")),
        schema=SCHEMA,
    )
    op.execute(
        """
        UPDATE chat.conversations AS c SET turns = counted.turns
        FROM (SELECT conversation_id, count(*) AS turns FROM chat.messages
              WHERE role = 'user' GROUP BY conversation_id) AS counted
        WHERE counted.conversation_id = c.id
        """
    )


def downgrade() -> None:
    op.drop_column("conversations", "turns", schema=SCHEMA)
