"""Request and response bodies of the todo service. Requests reject unknown fields.

Types are strict where JSON has a type of its own (a boolean is ``true``, never ``"yes"``);
timestamps are ISO 8601 strings with an offset.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shared.pagination import MAX_CURSOR_LENGTH
from shared.text import Composed, LabelKey
from shared.timezones import TimeZoneName
from todo_service.models import (
    DESCRIPTION_MAX,
    REMINDER_OFFSET_MAX_MINUTES,
    REMINDERS_MAX,
    SNOOZE_MAX_MINUTES,
    TAG_MAX,
    TAGS_MAX,
    TITLE_MAX,
    Priority,
    Recurrence,
)

# Stored in NFC and measured in it (``shared.text``): equal-looking text is equal.
Title = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=TITLE_MAX),
    Composed,
]
Description = Annotated[str, StringConstraints(strict=True, max_length=DESCRIPTION_MAX), Composed]

# A tag is a key (``shared.text.label_key``: NFKC, lower case, edges trimmed) before it is
# de-duplicated, compared or measured: "work" in full-width letters and "work" are one tag.
Tag = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=TAG_MAX), LabelKey]


# A date first: pydantic would also read a string of digits ("1700000000", "0.5") as epoch
# seconds, which no client means by a due date.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_string(value: Any) -> Any:
    """JSON has no timestamp type: accept only ISO 8601 strings, not numbers read as epoch
    seconds (whether sent as numbers or as strings of digits)."""
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATE.match(value)):
        return value
    raise ValueError("a timestamp must be an ISO 8601 string with a UTC offset")


# The instants a timestamp may name, exclusive: Python's datetime range, whose two ends the
# driver stores as PostgreSQL's -infinity and infinity (which read back as no date at all).
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def _to_utc(value: datetime) -> datetime:
    """In UTC; an instant whose UTC form falls outside the range (``0001-01-01T00:30+01:00``,
    ``9999-12-31T23:30-01:00``) or on one of its ends is refused like any invalid value."""
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the timestamp is out of range") from None
    if not EARLIEST < moment < LATEST:
        raise ValueError("the timestamp is out of range")
    return moment


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_string), AfterValidator(_to_utc)]

# Documented once for the request bodies: the zone the recurrence keeps its local time in.
TaskTimeZone = Annotated[
    TimeZoneName | None,
    Field(
        description="IANA time zone (e.g. Europe/Paris) whose wall-clock time a recurring "
        "task keeps from one occurrence to the next; null: UTC",
    ),
]


def _normalise_tags(tags: list[str]) -> list[str]:
    """Each a key (made per tag), duplicates dropped keeping first-seen order, at most 10."""
    unique = list(dict.fromkeys(tags))
    if len(unique) > TAGS_MAX:
        raise ValueError(f"at most {TAGS_MAX} distinct tags")
    return unique


# The bound before de-duplication only stops absurd bodies.
Tags = Annotated[
    list[Tag],
    Field(
        max_length=100,
        description=f"At most {TAGS_MAX} distinct tags once each is normalised (NFKC, lower "
        "case, invisible edges trimmed); a repeat is dropped, keeping the first one's place",
    ),
    AfterValidator(_normalise_tags),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer: a number without a fraction (``5.0`` is one), never a string or
    a boolean; a fraction is refused by the ``int`` that follows."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


# Reads an integer as JSON writes one (the REST bodies' minutes, the MCP tools' ids and
# counts). Placed after an ``int``'s bounds (``Annotated[int, Field(ge=1), JSON_INTEGER]``), so
# that the JSON schema keeps them as minimum and maximum.
JSON_INTEGER = BeforeValidator(_json_integer)

OffsetMinutes = Annotated[int, Field(ge=0, le=REMINDER_OFFSET_MAX_MINUTES), JSON_INTEGER]
SnoozeMinutes = Annotated[int, Field(ge=1, le=SNOOZE_MAX_MINUTES), JSON_INTEGER]


class ReminderIn(Strict):
    """One reminder: exactly one of an instant (``at``) or minutes before the due date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: Timestamp | None = None
    before_due_minutes: OffsetMinutes | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ReminderIn:
        if (self.at is None) == (self.before_due_minutes is None):
            raise ValueError("a reminder is exactly one of at or before_due_minutes")
        return self


def _distinct_reminders(reminders: list[ReminderIn]) -> list[ReminderIn]:
    if len(set(reminders)) != len(reminders):
        raise ValueError("the same reminder is given twice")
    return reminders


Reminders = Annotated[
    list[ReminderIn], Field(max_length=REMINDERS_MAX), AfterValidator(_distinct_reminders)
]


class TaskCreate(Strict):
    title: Title
    description: Description | None = None
    priority: Priority = Priority.MEDIUM
    tags: Tags = Field(default_factory=list)
    due_at: Timestamp | None = None
    recurrence: Recurrence = Recurrence.NONE
    time_zone: TaskTimeZone = None
    reminders: Reminders = Field(
        default_factory=list,
        description=f"At most {REMINDERS_MAX}; an offset reminder needs a due date",
    )

    @model_validator(mode="after")
    def _offsets_need_a_due_date(self) -> TaskCreate:
        if self.due_at is None and any(r.before_due_minutes is not None for r in self.reminders):
            raise ValueError("before_due_minutes needs a due date")
        return self


class TaskReplace(TaskCreate):
    """``PUT``: the whole writable state; an absent field takes its default, as on create."""

    completed: StrictBool = False

    def changes(self) -> dict[str, Any]:
        """Every writable field: a replace sets them all."""
        return self.model_dump()


_REQUIRED_IN_PATCH = ("title", "priority", "completed", "recurrence")


def _document_required_in_patch(schema: dict[str, Any]) -> None:
    """The published schema refuses ``null`` where the validator does, so that clients (and
    generated ones) do not learn from the document that they may send it."""
    for name in _REQUIRED_IN_PATCH:
        field = schema["properties"][name]
        options = [option for option in field.pop("anyOf", []) if option.get("type") != "null"]
        if len(options) == 1:
            field.update(options[0])
        field.pop("default", None)


class TaskPatch(Strict):
    """``PATCH`` (JSON merge patch): absent is unchanged, ``null`` clears a nullable field.

    ``null`` for ``tags`` clears them (an empty list); ``null`` for a field every task has
    is refused.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_required_in_patch)

    title: Title | None = None
    description: Description | None = None
    priority: Priority | None = None
    tags: Tags | None = None
    due_at: Timestamp | None = None
    recurrence: Recurrence | None = None
    time_zone: TaskTimeZone = None
    completed: StrictBool | None = None
    # The whole list: [] (or null) clears it; absent keeps it.
    reminders: Reminders | None = None

    @field_validator(*_REQUIRED_IN_PATCH, mode="after")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields present in the body: an absent field keeps its default.
        if value is None:
            raise ValueError("may not be null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the patch sets, with ``null`` tags read as no tags."""
        changed = {name: getattr(self, name) for name in self.model_fields_set}
        for name in ("tags", "reminders"):
            if name in changed and changed[name] is None:
                changed[name] = []
        return changed


class CompleteIn(Strict):
    """Body of ``PATCH /api/tasks/{id}/complete``: a value sets, no value (or no body) toggles."""

    completed: StrictBool | None = None


def utc_text(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# One spelling for every timestamp a client reads, whether Python or PostgreSQL renders it
# (todo_service.listing): UTC, microseconds, "Z". The text is an RFC 3339 date-time, and the
# document says so (the serializer's ``str`` alone would publish a plain string).
UtcTimestamp = Annotated[
    datetime,
    PlainSerializer(utc_text, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


class ReminderPublic(BaseModel):
    at: UtcTimestamp | None
    before_due_minutes: int | None
    # The instant it fires; null once fired, or while the task is completed.
    fires_at: UtcTimestamp | None


class TaskPublic(BaseModel):
    # Every field is in every answer: the document says so of those with a default too.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    completed_at: UtcTimestamp | None
    priority: Priority
    tags: list[str]
    due_at: UtcTimestamp | None
    recurrence: Recurrence
    # The zone the recurrence keeps its local time in; None: UTC (and in an idempotent
    # create's answer stored before todo 0013, which has no such field).
    time_zone: str | None = None
    # The occurrence that completing this recurring task created, while it exists.
    next_occurrence_id: int | None
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    version: int
    reminders: list[ReminderPublic]


class StatusFilter(enum.StrEnum):
    ALL = "all"
    PENDING = "pending"
    COMPLETED = "completed"


class SortField(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DUE = "due"
    PRIORITY = "priority"
    TITLE = "title"


# Phase II clients send `sort=due_date`.
SORT_ALIASES = {"due_date": SortField.DUE}
# What people expect without `order`: newest first, soonest due first, most urgent first, A-Z.
DEFAULT_ORDER: dict[SortField, Literal["asc", "desc"]] = {
    SortField.CREATED: "desc",
    SortField.UPDATED: "desc",
    SortField.DUE: "asc",
    SortField.PRIORITY: "desc",
    SortField.TITLE: "asc",
}
PAGE_MAX = 100


def _sort_field(value: Any) -> Any:
    return SORT_ALIASES.get(value, value) if isinstance(value, str) else value


class TaskQuery(BaseModel):
    """Filters, order and page of ``GET /api/tasks``; every filter narrows (AND)."""

    status: StatusFilter = Field(default=StatusFilter.ALL, description="all, pending, completed")
    priority: Priority | None = None
    tag: list[Tag] = Field(
        default_factory=list,
        max_length=TAGS_MAX,
        description="Repeatable: the task carries every tag given",
    )
    q: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=TITLE_MAX), Composed]
        | None
    ) = Field(default=None, description="Case-insensitive substring of title or description")
    due_before: Timestamp | None = Field(default=None, description="due_at < this (exclusive)")
    due_after: Timestamp | None = Field(default=None, description="due_at >= this (inclusive)")
    completed_before: Timestamp | None = Field(
        default=None, description="completed_at < this (exclusive); only completed tasks"
    )
    completed_after: Timestamp | None = Field(
        default=None, description="completed_at >= this (inclusive); only completed tasks"
    )
    overdue: bool = Field(default=False, description="true: not completed and due before now")
    has_due: bool | None = Field(
        default=None, description="false: only tasks without a due date; true: only with one"
    )
    sort: Annotated[SortField, BeforeValidator(_sort_field)] = Field(
        default=SortField.CREATED, description="due_date is accepted as an alias of due"
    )
    order: Literal["asc", "desc"] | None = Field(
        default=None,
        description="Default: desc for created, updated and priority; asc for due and title",
    )
    limit: int = Field(default=50, ge=1, le=PAGE_MAX)
    cursor: Annotated[str, StringConstraints(max_length=MAX_CURSOR_LENGTH)] | None = Field(
        default=None, description='From the previous page\'s Link: <...>; rel="next"'
    )

    @property
    def direction(self) -> Literal["asc", "desc"]:
        return self.order or DEFAULT_ORDER[self.sort]


class TaskPage(BaseModel):
    items: list[TaskPublic]
    total: int
    # Opaque; hand it back as `cursor` for the next page. None on the last page.
    next_cursor: str | None


# --- notifications ---------------------------------------------------------------------------


class NotificationPublic(BaseModel):
    id: int
    kind: Literal["reminder"]
    task_id: int
    task_title: str
    due_at: UtcTimestamp | None
    remind_at: UtcTimestamp
    created_at: UtcTimestamp
    read_at: UtcTimestamp | None


class NotificationQuery(Strict):
    """Page of ``GET /api/notifications``: newest first."""

    limit: int = Field(default=50, ge=1, le=PAGE_MAX)
    cursor: Annotated[str, StringConstraints(max_length=MAX_CURSOR_LENGTH)] | None = Field(
        default=None, description='From the previous page\'s Link: <...>; rel="next"'
    )
    unread: bool = Field(default=False, description="true: only notifications not yet read")


class SnoozeIn(Strict):
    minutes: SnoozeMinutes
