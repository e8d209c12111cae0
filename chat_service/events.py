"""The events the chat service consumes (docs/events.md): ``user.deleted`` from the users
stream purges the user's conversations for good (shared/purge.py)."""

from __future__ import annotations

from chat_service.models import (
    CONVERSATIONS,
    DELETED_SUBJECTS,
    MESSAGES,
    PROCESSED_EVENTS,
    TURN_KEYS,
)
from shared.purge import UserPurge

PURGE = UserPurge(
    group="chat",
    deleted_subjects=DELETED_SUBJECTS,
    processed_events=PROCESSED_EVENTS,
    tables=(MESSAGES, TURN_KEYS, CONVERSATIONS),
)
