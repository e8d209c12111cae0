"""Where a conversation stands, as data: what the assistant's last message waits for.

Every assistant message is stored with a ``DialogueState`` (column ``chat.messages.state``):
nothing (``none``), a title for a new task, a choice among candidate tasks, or a yes/no
confirmation of a bulk action. The pending command travels with it, so the next message is
read against the state and never against the wording of the reply: replies can be reworded
freely. The state is validated on read; a stored value that does not fit (hand-edited,
written by a newer version) reads as "waiting for nothing", so the conversation goes on.
"""

from __future__ import annotations

import logging
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

# The bulk tools' own bound: one confirmation covers at most this many tasks.
MAX_CANDIDATES = 100
BULK_TOOLS = frozenset({"complete_tasks", "delete_tasks"})
# A chore offered is said in one message, which the chat bounds well below this.
CHORE_MAX = 4000


class Awaiting(StrEnum):
    NONE = "none"
    TITLE = "title"  # the name of a task to add
    CHOICE = "choice"  # which of ``candidates`` the pending command is about
    CONFIRMATION = "confirmation"  # yes/no for the pending (bulk) command on ``candidates``


class PendingCommand(BaseModel):
    """What runs once the awaited answer arrives: ``action`` is a tool name (``add_task``,
    ``complete_task``, ``delete_task``, ``update_task``, ``complete_tasks``, ``delete_tasks``)
    and ``arguments`` its arguments without the task id(s), which the answer supplies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(max_length=40)
    arguments: dict[str, Any] = Field(default_factory=dict)


class DialogueState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    awaiting: Awaiting = Awaiting.NONE
    candidates: tuple[int, ...] = Field(default=(), max_length=MAX_CANDIDATES)
    command: PendingCommand | None = None
    # The chore a question about deleting offered to add ("add cancel my gym membership"),
    # in the words to say after "add": "add it" in answer adds it.
    chore: str | None = Field(default=None, max_length=CHORE_MAX)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True) | {
            "awaiting": self.awaiting.value
        }

    @classmethod
    def load(cls, value: Any) -> DialogueState:
        """The stored value read back; anything unreadable is "waiting for nothing"."""
        if value is None:
            return NOTHING
        try:
            return cls.model_validate(value)
        except ValidationError:
            logger.warning("unreadable dialogue state ignored: %.200r", value)
            return NOTHING


NOTHING = DialogueState()

_YES_WORDS = (
    r"(?:y|ya|yes|yeah|yep|yup|sure|ok|okay|confirm|confirmed|do it|go ahead|go for it|"
    r"yes please|please do|please|correct|right|absolutely|definitely|of course|affirmative|"
    r"sounds good|that's right|thats right|proceed|sure thing|go on|please proceed|that's fine|"
    r"fine|alright|all right|k|kk|okie|yessir|certainly|why not|yes go|ok sure|yeah sure|"
    r"let's do it|lets do it|i'm sure|im sure|yes i'm sure|confirmed)"
)
# One yes, then more of the same ("sure, go for it", "yes please, do it"); the message is at
# most 60 characters, so the repetition stays cheap.
_YES = re.compile(
    rf"^{_YES_WORDS}(?:[\s,]+(?:{_YES_WORDS}|thanks|thank you|delete them|complete them|"
    r"all of them))*$",
    re.IGNORECASE,
)


def is_yes(message: str) -> bool:
    """A plain, unambiguous yes (anything else cancels a pending confirmation)."""
    text = " ".join(message.split()).strip(" .!").lower()
    return len(text) <= 60 and _YES.match(text) is not None


_NO = re.compile(r"^(?:n|no|nope|nah|no thanks|not now|no way|never mind|cancel)$", re.IGNORECASE)


def is_yes_or_no(message: str) -> bool:
    """A bare yes or no (with nothing waiting for one, it needs no more than an OK)."""
    text = " ".join(message.split()).strip(" .!").lower()
    return is_yes(text) or _NO.match(text) is not None


# Tool arguments the platform sets, never shown to the model nor taken from it.
PLATFORM_ARGUMENTS = ("user_id", "idempotency_key")


def bulk_arguments(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """What a bulk call does besides naming its tasks, as its confirmation stores and asks
    about it: its arguments but ``task_ids`` and the platform's, ``completed: true`` (the
    default of ``complete_tasks``) left out."""
    rest = {
        key: value
        for key, value in arguments.items()
        if key != "task_ids" and key not in PLATFORM_ARGUMENTS
    }
    if name == "complete_tasks" and rest.get("completed") is True:
        del rest["completed"]
    return rest


def confirms(state: DialogueState, message: str, name: str, arguments: dict[str, Any]) -> bool:
    """Whether ``message``, answering a message in ``state``, confirms the bulk call
    ``name(**arguments)``: the state awaits a confirmation of exactly that action, with the
    same arguments (a reopening is not the completion the user agreed to), on exactly those
    tasks, and the message says yes."""
    task_ids = arguments.get("task_ids")
    return (
        state.awaiting is Awaiting.CONFIRMATION
        and state.command is not None
        and state.command.action == name
        and state.command.arguments == bulk_arguments(name, arguments)
        and isinstance(task_ids, list)
        and all(isinstance(i, int) and not isinstance(i, bool) for i in task_ids)
        and sorted(set(task_ids)) == sorted(set(state.candidates))
        and len(task_ids) == len(set(task_ids))
        and is_yes(message)
    )
