"""The chat corpus (tests/chat/corpus/): its format, how a turn is judged, and fillers.

Everything here is pure: loading and validating a corpus file, comparing what a turn did with
what the corpus expects, and inserting fillers into a message. tests/chat/test_corpus.py runs
the entries against the real services. The format is documented in
tests/chat/corpus/README.md.
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

# libyaml's safe loader when PyYAML was built with it: about ten times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CORPUS_DIR = Path(__file__).resolve().parent.parent / "chat" / "corpus"

Intent = Literal[
    "add",
    "add_many",
    "list",
    "count",
    "history",
    "complete",
    "complete_fact",
    "reopen",
    "delete",
    "update",
    "reference",
    "bulk",
    "clarify",
    "decline",
    "smalltalk",
    "remind",
]
INTENTS: tuple[str, ...] = Intent.__args__  # type: ignore[attr-defined]

ReplyKind = Literal["clarify", "decline", "answer"]

# Tools the todo service offers the chat agents; the read-only ones change nothing.
READ_TOOLS = frozenset({"list_tasks", "count_tasks", "get_task", "list_notifications"})
TOOLS = READ_TOOLS | {
    "add_task",
    "update_task",
    "complete_task",
    "delete_task",
    "complete_tasks",
    "delete_tasks",
    "snooze_notification",
    "dismiss_notification",
}

_PLACEHOLDER = re.compile(r"\{(?P<kind>t|new)(?P<n>[1-9]\d*)\}")


class CorpusError(ValueError):
    """A corpus file that does not follow the format."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedTask(_Strict):
    title: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    description: StrictStr | None = None
    priority: Literal["low", "medium", "high"] | None = None
    tags: list[StrictStr] | None = None
    due_at: AwareDatetime | None = None
    completed: StrictBool = False
    # As POST /api/tasks takes them: {"at": ...} or {"before_due_minutes": ...}.
    reminders: list[dict[StrictStr, Any]] | None = None

    def create_body(self) -> dict[str, Any]:
        """The body of ``POST /api/tasks`` that creates this task (completion comes after)."""
        body = self.model_dump(mode="json", exclude_none=True, exclude={"completed"})
        return body


class ExpectedCall(_Strict):
    name: StrictStr
    args: dict[StrictStr, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_tool(self) -> ExpectedCall:
        if self.name not in TOOLS:
            raise ValueError(f"unknown tool {self.name!r} (known: {', '.join(sorted(TOOLS))})")
        return self


class Expect(_Strict):
    calls: list[ExpectedCall] | None = None
    reply: ReplyKind | None = None

    @model_validator(mode="after")
    def _something_expected(self) -> Expect:
        if self.calls is None and self.reply is None:
            raise ValueError("expect needs calls, reply or both")
        return self


class Turn(_Strict):
    say: Annotated[StrictStr, Field(min_length=1)]
    expect: Expect


class Utterance(Turn):
    id: Annotated[StrictStr, Field(min_length=1)]
    intent: Intent
    tasks: list[SeedTask] = Field(default_factory=list)

    @property
    def turns(self) -> list[Turn]:
        return [Turn(say=self.say, expect=self.expect)]

    @property
    def final(self) -> list[FinalTask] | None:
        return None


class FinalTask(_Strict):
    title: Annotated[StrictStr, Field(min_length=1)]
    description: StrictStr | None = None
    priority: Literal["low", "medium", "high"] | None = None
    tags: list[StrictStr] | None = None
    due_at: AwareDatetime | None = None
    completed: StrictBool | None = None


class Dialogue(_Strict):
    id: Annotated[StrictStr, Field(min_length=1)]
    intent: Intent
    tasks: list[SeedTask] = Field(default_factory=list)
    turns: Annotated[list[Turn], Field(min_length=1)]
    final: list[FinalTask] | None = None


Entry = Utterance | Dialogue


class Corpus(_Strict):
    utterances: list[Utterance] = Field(default_factory=list)
    dialogues: list[Dialogue] = Field(default_factory=list)

    @property
    def entries(self) -> list[Entry]:
        return [*self.utterances, *self.dialogues]

    @model_validator(mode="after")
    def _consistent(self) -> Corpus:
        counts = Counter(entry.id for entry in self.entries)
        duplicates = sorted(name for name, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate ids: {', '.join(duplicates)}")
        for entry in self.entries:
            _check_placeholders(entry)
        return self


def _check_placeholders(entry: Entry) -> None:
    """Every {tN} names a seeded task; every {newN} may only be created by an earlier turn."""
    adds_before = 0
    for turn in entry.turns:
        texts = [turn.say, repr([call.args for call in turn.expect.calls or []])]
        for text in texts:
            for match in _PLACEHOLDER.finditer(text):
                n = int(match["n"])
                if match["kind"] == "t" and n > len(entry.tasks):
                    raise ValueError(f"{entry.id}: {match[0]} but only {len(entry.tasks)} tasks")
                if match["kind"] == "new" and n > adds_before + _adds(turn):
                    raise ValueError(f"{entry.id}: {match[0]} before that task is added")
        adds_before += _adds(turn)


def _adds(turn: Turn) -> int:
    return sum(call.name == "add_task" for call in turn.expect.calls or [])


def parse_corpus(text: str, *, source: str = "<corpus>") -> Corpus:
    """A corpus from YAML text; a CorpusError saying what is wrong otherwise."""
    try:
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as error:
        raise CorpusError(f"{source}: not YAML: {error}") from error
    if not isinstance(data, dict):
        raise CorpusError(f"{source}: the top level must be a mapping")
    try:
        return Corpus.model_validate(data)
    except ValidationError as error:
        raise CorpusError(f"{source}: {error}") from error


@functools.cache
def load_corpus(path: Path) -> Corpus:
    return parse_corpus(path.read_text(encoding="utf-8"), source=path.name)


# --- placeholders -----------------------------------------------------------------------------


def fill(text: str, ids: dict[str, int]) -> str:
    """``text`` with each {t1}/{new1} replaced by the id it stands for."""

    def replace(match: re.Match[str]) -> str:
        key = match[0][1:-1]
        return str(ids[key]) if key in ids else match[0]

    return _PLACEHOLDER.sub(replace, text)


def resolve(value: Any, ids: dict[str, int]) -> Any:
    """An expected value with placeholders: an exact placeholder becomes the integer id."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole is not None:
            key = value[1:-1]
            return ids.get(key, value)
        return fill(value, ids)
    if isinstance(value, list):
        return [resolve(item, ids) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, ids) for key, item in value.items()}
    return value


# --- comparison -------------------------------------------------------------------------------

_TIME_SUFFIXES = ("_at", "_before", "_after")


def _as_instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _normal(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().casefold()
    return value


def value_matches(key: str, expected: Any, actual: Any) -> bool:
    """One argument as the format compares it (after placeholders are resolved)."""
    if expected is None:
        return actual is None
    if key.endswith(_TIME_SUFFIXES):
        want, got = _as_instant(expected), _as_instant(actual)
        return want is not None and got is not None and want == got
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return False
        if expected and all(isinstance(item, dict) for item in expected):
            return _items_match(expected, actual)
        return Counter(map(_hashable, expected)) == Counter(map(_hashable, actual))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, str):
        return isinstance(actual, str) and _normal(expected) == _normal(actual)
    return type(expected) is type(actual) and expected == actual


def _items_match(expected: list[dict[str, Any]], actual: list[Any]) -> bool:
    """A list of objects (``reminders``): as many items, each expected one matched by its own
    actual one on the keys it gives (compared as arguments are), in any order."""
    if len(expected) != len(actual):
        return False
    left = list(actual)
    for want in expected:
        found = next(
            (
                got
                for got in left
                if isinstance(got, dict)
                and all(value_matches(key, value, got.get(key)) for key, value in want.items())
            ),
            None,
        )
        if found is None:
            return False
        left.remove(found)
    return True


def _hashable(value: Any) -> Any:
    value = _normal(value)
    return repr(value) if isinstance(value, dict | list) else value


def calls_mismatch(
    expected: list[dict[str, Any]], actual: list[tuple[str, dict[str, Any]]]
) -> str | None:
    """Why the calls of a turn differ from the expected ones; None when they match."""
    if len(expected) != len(actual):
        return f"{len(actual)} calls, expected {len(expected)}"
    for index, (want, (name, arguments)) in enumerate(zip(expected, actual, strict=True)):
        if want["name"] != name:
            return f"call {index + 1} is {name}, expected {want['name']}"
        for key, value in want.get("args", {}).items():
            if not value_matches(key, value, arguments.get(key)):
                return f"call {index + 1} ({name}) {key}={arguments.get(key)!r}, expected {value!r}"
    return None


# What a reply that does not wait says when it declines, and when it did not understand.
_DECLINES = re.compile(
    r"\b(?:sorry|can(?:no|')t|can not|could(?:n't| not)|unable|not able|no (?:task|tasks|"
    r"match|matches|such|pending|completed|open)|nothing|did(?:n't| not) find|not found|"
    r"won't|will not|cancel(?:l?ed)?|left (?:it|them|everything) (?:alone|as)|no longer|"
    r"isn't|is not|don't have|do not have|can only|only help|outside|already)\b",
    re.IGNORECASE,
)
_NOT_UNDERSTOOD = re.compile(
    r"\b(?:did(?:n't| not) understand|don't understand|do not understand|not sure what you "
    r"mean|didn't catch|did not catch)\b",
    re.IGNORECASE,
)


_LISTED = re.compile(r"^(?:[•✓*-]|\d+[.:)])")  # a listed task, whose title may end in "?"
_COURTESY = re.compile(r"^(?:anything else|what else|is there anything|can i help)\b", re.I)


def asks_a_question(response: str) -> bool:
    """The reply's own text waits for an answer: a question outside the listed tasks, other
    than a courtesy ("Anything else I can do?")."""
    for line in _QUOTED.sub("", response).splitlines():
        line = line.strip()
        if not line or _LISTED.match(line):
            continue
        for sentence in re.findall(r"[^.!?]*\?", line):
            if not _COURTESY.match(sentence.strip()):
                return True
    return False


def reply_mismatch(
    kind: str, *, calls: list[tuple[str, dict[str, Any]]], response: str, awaits: bool
) -> str | None:
    """Why a reply is not of ``kind``; None when it is. ``awaits``: the turn waits for input."""
    changing = [name for name, _ in calls if name not in READ_TOOLS]
    if changing:
        return f"called {', '.join(changing)}, expected a {kind} and no change"
    if kind == "clarify":
        if _NOT_UNDERSTOOD.search(response):
            return "says it did not understand, expected a clarifying question"
        return None if awaits else "does not wait for an answer, expected a clarifying question"
    if awaits:
        return f"waits for an answer, expected {kind}"
    if kind == "decline":
        return None if _DECLINES.search(response) else "does not say it cannot, expected decline"
    if _NOT_UNDERSTOOD.search(response):
        return "says it did not understand, expected an answer"
    return None


def final_mismatch(expected: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> str | None:
    """Why the user's tasks differ from the expected final list; None when they match."""
    by_title: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        by_title.setdefault(_normal(task["title"]), []).append(task)
    for want in expected:
        found = by_title.get(_normal(want["title"]))
        if not found:
            return f"no task {want['title']!r}"
        task = found.pop(0)
        for key, value in want.items():
            if not value_matches(key, value, task.get(key)):
                return f"{want['title']!r}: {key}={task.get(key)!r}, expected {value!r}"
    extra = [task["title"] for found in by_title.values() for task in found]
    if extra:
        return f"unexpected tasks: {', '.join(map(repr, extra))}"
    return None


# --- fillers ----------------------------------------------------------------------------------

FILLERS = ("um", "please", "for me", "right now", "uh")
# No filler right after a word that binds to the next one ("the | report", "to | Friday",
# "task | 3"): nobody says "the um report", and the test is about what people do say.
_BINDING = frozenset(
    [
        "a",
        "an",
        "the",
        "my",
        "your",
        "his",
        "her",
        "its",
        "their",
        "our",
        "this",
        "that",
        "these",
        "those",
        "to",
        "on",
        "at",
        "in",
        "of",
        "by",
        "for",
        "from",
        "with",
        "into",
        "next",
        "last",
        "task",
        "tasks",
        "no",
        "not",
        "as",
    ]
)
_QUOTED = re.compile(r"“[^”]*”|‘[^’]*’|\"[^\"]*\"|(?<!\w)'[^']*'(?!\w)")  # noqa: RUF001


def with_filler(text: str, rng: random.Random) -> str:
    """``text`` with one filler at a random word boundary outside quoted titles.

    Boundaries are the spaces between words and the two ends; a space inside quotes is not
    one, so a quoted title keeps its exact words, nor is a space after a word that binds to
    the next. Tags and placeholders are single words and are never split.
    """
    quoted = [range(m.start(), m.end()) for m in _QUOTED.finditer(text)]
    spaces = [
        index
        for index, char in enumerate(text)
        if char == " "
        and not any(index in span for span in quoted)
        and text[:index].rsplit(" ", 1)[-1].casefold() not in _BINDING
    ]
    positions = [0, *spaces, len(text)]
    at = rng.choice(positions)
    filler = rng.choice(FILLERS)
    if at == 0:
        return f"{filler} {text}"
    if at == len(text):
        stripped = text.rstrip("?.! ")
        return f"{stripped} {filler}{text[len(stripped) :]}"
    return f"{text[:at]} {filler}{text[at:]}"
