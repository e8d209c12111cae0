"""Everyday English to a structured command, for the rule-based agent.

``understand(text, now=..., tz=...) -> Command``. Deterministic and table-driven: ``RULES`` is an
ordered list of (intent, pattern); the first pattern that matches the cleaned sentence decides
the intent, and its named groups carry the pieces (``ref`` a task reference, ``rest`` a new
task's text, ``field``/``value`` an edit). The pieces are then read by small helpers: task
references (``task 3``, ``it``, ``the meeting task``), priorities, tags, due dates (``dates``),
recurrence and list filters. Nothing here calls a tool; the agent decides what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from chat_service.agents.dates import find_due, fold_case, parse_due


class Intent(StrEnum):
    GREETING = "greeting"
    THANKS = "thanks"
    HELP = "help"
    ADD = "add"
    LIST = "list"
    COMPLETE = "complete"
    REOPEN = "reopen"
    DELETE = "delete"
    UPDATE = "update"
    ANSWER = "answer"  # a bare reference, answering "which one?"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TaskRef:
    """How a sentence points at a task: by id(s), by pronoun, by ordinal or by title words."""

    ids: tuple[int, ...] = ()
    pronoun: bool = False
    ordinal: int | None = None  # 1-based; -1 for "the last one"
    title: str | None = None
    bulk: bool = False  # "all", "everything": refused, one task at a time


@dataclass(frozen=True)
class ListFilters:
    status: str = "all"
    priority: str | None = None
    tag: str | None = None
    q: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None

    def arguments(self) -> dict[str, object]:
        """The list_tasks arguments: status always, the rest only when set."""
        arguments: dict[str, object] = {"status": self.status}
        for name in ("priority", "tag", "q"):
            value = getattr(self, name)
            if value is not None:
                arguments[name] = value
        if self.due_before is not None:
            arguments["due_before"] = self.due_before.isoformat()
        if self.due_after is not None:
            arguments["due_after"] = self.due_after.isoformat()
        return arguments


@dataclass(frozen=True)
class Command:
    intent: Intent
    ref: TaskRef | None = None
    title: str | None = None
    description: str | None = None
    priority: str | None = None
    tags: tuple[str, ...] = ()
    due_at: datetime | None = None
    recurrence: str | None = None
    filters: ListFilters = field(default_factory=ListFilters)


# Straight and typographic quotes, as phones type them.
OPEN_QUOTES = "\"'\u201c\u2018"
CLOSE_QUOTES = "\"'\u201d\u2019"
QUOTES = OPEN_QUOTES + CLOSE_QUOTES
DASHES = "-\u2013\u2014"


def _rule(intent: Intent, pattern: str) -> tuple[Intent, re.Pattern[str]]:
    return intent, re.compile(pattern, re.IGNORECASE)


_TASK_WORD = r"(?:tasks?|todos?|to-dos?|items?|reminders?)"
_DONE = r"(?:complete|completed|done|finished|finish|checked off|ticked off)"
_NOT_DONE = r"(?:not done|not complete|not completed|incomplete|undone|unfinished|pending|open)"
_PRIORITY_VALUE = (
    r"(?:(?:a\s+|the\s+)?(?:high|low|medium|normal|top|highest|lowest)(?:[\s-]priority)?|urgent"
    r"|important|not urgent|unimportant)"
)
_FIELD = (
    r"(?P<field>title|name|description|details|notes?|priority|due date|due time|deadline|"
    r"due|tags?)"
)
_EDIT = r"(?:change|rename|update|edit|modify|set|retitle|reword|alter)"

# Order matters: the first match wins, so specific shapes come before general ones.
RULES: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    _rule(
        Intent.GREETING,
        r"^(?:hi|hello|hey|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening|day))"
        r"(?:\s+(?:there|again|assistant|bot|friend))?$",
    ),
    _rule(
        Intent.THANKS,
        r"^(?:thanks|thank you|thx|ty|cheers|great|perfect|awesome|cool|nice|ok|okay|got it|"
        r"good|great thanks|ok thanks)(?:\s+(?:so much|a lot|very much|again))?$",
    ),
    _rule(
        Intent.HELP,
        r"^(?:help|help me|what can you do|what else can you do|what do you do|"
        r"how (?:do|does) (?:this|it|you) work|how can you help(?: me)?|"
        r"what are (?:your|the) commands|commands|who are you|what are you)$",
    ),
    _rule(
        Intent.ANSWER,
        rf"^(?P<ref>(?:the\s+)?(?:{_TASK_WORD}\s*)?(?:number\s+|no\.?\s*)?#?\d+|"
        r"(?:the\s+)?(?:first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th)"
        r"(?:\s+one)?)$",
    ),
    # Undoing a completion is not something the tools offer: say so instead of guessing.
    _rule(Intent.REOPEN, rf"^(?:mark|set|flag)\s+(?P<ref>.+?)\s+(?:as\s+)?{_NOT_DONE}$"),
    _rule(Intent.REOPEN, r"^(?:reopen|uncomplete|unmark|undo|re-open|uncheck)\s+(?P<ref>.+)$"),
    _rule(
        Intent.COMPLETE,
        rf"^(?:mark|set|flag|tick|check)\s+(?P<ref>.+?)\s+(?:as\s+|to\s+)?{_DONE}$",
    ),
    _rule(
        Intent.COMPLETE,
        r"^(?:complete|finish|close|tick off|check off|cross off|cross out)\s+(?P<ref>.+)$",
    ),
    _rule(Intent.COMPLETE, r"^(?:i'?m\s+)?(?:all\s+)?done with\s+(?P<ref>.+)$"),
    _rule(
        Intent.COMPLETE,
        r"^i(?:\s+have|'ve)?\s+(?:just\s+|already\s+|now\s+)?(?:done|did|finished|completed)"
        r"\s+(?P<ref>.+)$",
    ),
    _rule(
        Intent.COMPLETE,
        rf"^(?P<ref>.+?)\s+(?:is|are|was|has been)\s+(?:now\s+|all\s+)?{_DONE}$",
    ),
    _rule(
        Intent.DELETE,
        r"^(?:delete|remove|erase|cancel|drop|discard|trash|scrap|get rid of|forget about|"
        r"forget|bin)\s+(?P<ref>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        rf"^{_EDIT}\s+(?:the\s+)?{_FIELD}\s+(?:of|for|on|in)\s+(?P<ref>.+?)\s+"
        r"(?:to|as|into|:)\s*(?P<value>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        rf"^{_EDIT}\s+(?P<ref>.+?)(?:'s|s')?\s+{_FIELD}\s+(?:to|as|into|:)\s*(?P<value>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        rf"^(?:make|set|mark)\s+(?P<ref>.+?)\s+(?:as\s+)?(?P<value>{_PRIORITY_VALUE})$",
    ),
    _rule(
        Intent.UPDATE,
        r"^(?:move|reschedule|postpone|push(?: back)?|delay|defer|shift)\s+(?P<ref>.+?)\s+"
        r"(?:to|until|till|for|by)\s+(?P<value>.+)$",
    ),
    _rule(Intent.UPDATE, rf"^{_EDIT}\s+(?P<ref>.+?)\s*(?:\s+to|\s+as|\s+into|:)\s*(?P<value>.+)$"),
    _rule(
        Intent.UPDATE,
        rf"^(?P<ref>(?:{_TASK_WORD}\s*#?\d+|#\d+|it|that|this))\s+(?:is\s+|should be\s+)?"
        r"(?:now\s+)?due\s+(?P<value>.+)$",
    ),
    _rule(
        Intent.ADD,
        r"^(?:remind me|remember|don'?t let me forget|do not let me forget|make sure i|"
        r"note to self|i (?:need|have|must|should|want|gotta|got) to remember)"
        r"(?:\s+(?:to|that|about|of)|:)?\s+(?P<rest>.+)$",
    ),
    _rule(
        Intent.ADD,
        rf"^(?:add|create|insert|log|jot down|write down|note down|put|make|new|schedule)\s+"
        rf"(?:(?:a|an|another|one more|the)\s+)?(?:new\s+)?(?:{_TASK_WORD}|note)?\s*"
        r"(?:(?:called|named|titled|to|for|about|that says|saying|:|-)\s*)?(?P<rest>.+)$",
    ),
    _rule(Intent.ADD, rf"^(?:new|another)\s+{_TASK_WORD}\s*:?\s*(?P<rest>.+)$"),
    _rule(
        Intent.LIST,
        r"^(?:search|find|look for|look up|lookup)\s+(?:for\s+)?(?:my\s+)?(?:tasks?\s+)?"
        r"(?:about|with|containing|mentioning|matching|named|called|titled|for)?\s*(?P<q>.+)$",
    ),
    _rule(
        Intent.LIST,
        r"^(?:show|list|display|view|see|get|give|tell|read|print|fetch|check|pull up|open)\b"
        r"(?P<rest>.*)$",
    ),
    _rule(
        Intent.LIST,
        r"^(?:what|which|whats|how many|how much|do i have|have i|is there|are there|any|"
        r"anything)\b(?P<rest>.*)$",
    ),
    _rule(
        Intent.LIST,
        rf"^(?:my\s+|all\s+|the\s+)*(?:(?:pending|completed|open|done|finished|incomplete|"
        rf"outstanding|overdue|urgent|important|high[\s-]priority|low[\s-]priority|"
        rf"medium[\s-]priority|#\w+)\s+)*(?:{_TASK_WORD}|list|todo list|to do list)"
        rf"(?P<rest>.*)$",
    ),
    _rule(
        Intent.ADD,
        r"^i\s+(?:need|have|must|should|gotta|got|want)\s+to\s+(?P<rest>.+)$",
    ),
    _rule(Intent.ADD, r"^(?:need to|have to|must|gotta|todo:?|to do:?)\s+(?P<rest>.+)$"),
)

_POLITE_PREFIX = re.compile(
    r"^(?:(?:please|pls|plz|kindly|ok(?:ay)?|so|and|also|now|hey|oh|alright|then|um+|uh+|"
    r"great|thanks|thank you)[\s,!.]+|(?:can|could|would|will)\s+(?:you|u)(?:\s+please)?\s+|"
    r"i(?:'d| would) like (?:you )?to\s+|i want you to\s+|(?:let'?s|lets)\s+|"
    r"go ahead and\s+|(?:just|quickly)\s+|i want to\s+(?=(?:see|view|add|create|delete|"
    r"remove|mark|complete|change|update|list|know)\b))",
    re.IGNORECASE,
)
# Polite words a request may end with ("..., please", "thanks", "for me now"); "asap" only as
# the very last word. Read from the right by ``_strip_polite_tail``, never by a regular
# expression: a pattern anchored at the end with a repeated separator class backtracks
# quadratically over a long run of commas or spaces.
_POLITE_TAIL_WORDS = ("please", "pls", "plz", "thanks", "thank you", "for me", "now")
_LAST_POLITE_WORD = "asap"
_SEPARATORS = " ,"
# What ends a sentence without changing it; the text is whitespace-collapsed before this.
_END_PUNCTUATION = " .!?"


def _polite_word_before(lowered: str, end: int, *, last: bool) -> int | None:
    """Where the polite word ending at ``end`` starts, when one does and a separator (space
    or comma) comes before it; otherwise None."""
    words = (*_POLITE_TAIL_WORDS, _LAST_POLITE_WORD) if last else _POLITE_TAIL_WORDS
    for word in words:
        start = end - len(word)
        if start > 0 and lowered.startswith(word, start) and lowered[start - 1] in _SEPARATORS:
            return start
    return None


def _strip_polite_tail(sentence: str) -> str:
    """``sentence`` without the polite words and end punctuation it finishes with, in one pass
    from the right (linear in the length)."""
    lowered = sentence.lower()
    bare = len(sentence.rstrip(_END_PUNCTUATION))
    end = bare
    while (start := _polite_word_before(lowered, end, last=end == len(sentence))) is not None:
        end = start
        while end > 0 and sentence[end - 1] in _SEPARATORS:
            end -= 1
    if end < bare:
        return sentence[:end]
    return sentence[:bare]


def clean(text: str) -> str:
    """Trim politeness and punctuation that do not change what is asked."""
    sentence = " ".join(text.split())
    for _ in range(5):
        trimmed = _strip_polite_tail(sentence).strip(_SEPARATORS)
        without_prefix = _POLITE_PREFIX.sub("", trimmed, count=1).strip(_SEPARATORS)
        if without_prefix:  # "thanks" alone is the whole message, not a prefix
            trimmed = without_prefix
        if trimmed == sentence:
            break
        sentence = trimmed
    return sentence


def understand(text: str, *, now: datetime, tz: ZoneInfo) -> Command:
    """What ``text`` asks for. Never raises: anything unclear is ``Intent.UNKNOWN``."""
    light = " ".join(text.split()).rstrip(_END_PUNCTUATION)
    for intent, pattern in RULES:
        if intent in _SMALL_TALK and pattern.match(light):
            return Command(intent)
    sentence = clean(text)
    if not sentence:
        return Command(Intent.UNKNOWN)
    for intent, pattern in RULES:
        match = pattern.match(sentence)
        if match is None:
            continue
        groups = {k: v for k, v in match.groupdict().items() if v is not None}
        command = _build(intent, groups, sentence, now=now, tz=tz)
        if command is not None:
            return command
    return Command(Intent.UNKNOWN)


_SMALL_TALK = frozenset({Intent.GREETING, Intent.THANKS, Intent.HELP})


def _build(
    intent: Intent, groups: dict[str, str], sentence: str, *, now: datetime, tz: ZoneInfo
) -> Command | None:
    """Read a matched rule's pieces; None lets the next rule try."""
    if intent in {Intent.GREETING, Intent.THANKS, Intent.HELP}:
        return Command(intent)
    if intent in {Intent.COMPLETE, Intent.DELETE, Intent.REOPEN, Intent.ANSWER}:
        ref = read_ref(groups["ref"])
        if ref is None:
            return None
        return Command(intent, ref=ref)
    if intent is Intent.UPDATE:
        return _update(groups, now=now, tz=tz)
    if intent is Intent.ADD:
        rest = groups["rest"]
        inner = understand(rest, now=now, tz=tz) if _starts_with_command(rest) else None
        if inner is not None and inner.intent not in {Intent.UNKNOWN, Intent.ADD}:
            return inner  # "I want to see my tasks", "I need to delete task 3"
        return _add(rest, now=now, tz=tz)
    if intent is Intent.LIST:
        return _list(groups, sentence, now=now, tz=tz)
    return None


# --- task references -------------------------------------------------------------------------

_IDS = re.compile(
    rf"^(?:the\s+)?(?:{_TASK_WORD}\s*)?(?:(?:number|no\.?|#)\s*)?#?(?P<first>\d+)"
    r"(?P<more>(?:\s*(?:,|and|&|\+)\s*(?:(?:task\s*)?#?\d+))*)$",
    re.IGNORECASE,
)
_PRONOUN = re.compile(
    r"^(?:it|that|this|that one|this one|the same one|that task|this task|the task|"
    r"the last task|the one i just added|the last one i added|the one you just added|"
    r"the previous one|the previous task)$",
    re.IGNORECASE,
)
_ORDINALS = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "last": -1,
}
_ORDINAL = re.compile(
    r"^(?:the\s+)?(?P<word>" + "|".join(_ORDINALS) + r")(?:\s+(?:one|task|item))?$",
    re.IGNORECASE,
)
_BULK = re.compile(
    r"^(?:all|everything|every task|all (?:of )?(?:my |the )?(?:\w+ )?(?:tasks|todos|items)|"
    r"(?:my |the )?(?:completed|finished|done|pending|old) (?:tasks|todos|items)|them all)$",
    re.IGNORECASE,
)
_REF_NOISE = re.compile(
    rf"^(?:the|my|a|an)\s+|\s+(?:{_TASK_WORD}|one)$|^(?:{_TASK_WORD})\s+(?:called|named|titled|"
    r"about|for|to)?\s*|^(?:called|named|titled)\s+",
    re.IGNORECASE,
)


def read_ref(text: str) -> TaskRef | None:
    """A task reference: ``task 3``/``#3``/``3 and 4``, ``it``, ``the second one``, or title
    words (``the meeting task`` -> ``meeting``)."""
    # Squeezed: a reference may be a raw message (the answer to "which one?").
    phrase = _squeeze(text).strip(".!?,").strip()
    if not phrase:
        return None
    ids = _IDS.match(phrase)
    if ids is not None:
        numbers = [int(ids["first"]), *map(int, re.findall(r"\d+", ids["more"]))]
        return TaskRef(ids=tuple(dict.fromkeys(numbers)))
    if _PRONOUN.match(phrase):
        return TaskRef(pronoun=True)
    ordinal = _ORDINAL.match(phrase)
    if ordinal is not None:
        return TaskRef(ordinal=_ORDINALS[ordinal["word"].lower()])
    if _BULK.match(phrase):
        return TaskRef(bulk=True)
    quoted = _quoted(phrase)
    if quoted is not None:
        return TaskRef(title=quoted)
    title = phrase
    for _ in range(4):
        trimmed = _REF_NOISE.sub("", title).strip()
        if trimmed == title:
            break
        title = trimmed
    title = _quoted(title) or title
    return TaskRef(title=title) if title and not _PRONOUN.match(title) else None


def _quoted(text: str) -> str | None:
    match = re.fullmatch(rf"\s*[{OPEN_QUOTES}](.+?)[{CLOSE_QUOTES}]\s*", text)
    return match.group(1).strip() if match else None


# --- new tasks -------------------------------------------------------------------------------

# The priority, tag, recurrence and status words are searched for in ``fold_case`` text.
_PRIORITY_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), value)
    for pattern, value in (
        (r"\b(?:with\s+)?(?:a\s+)?(?:high|top|highest)[\s-]priority\b", "high"),
        (r"\b(?:with\s+)?(?:a\s+)?(?:low|lowest)[\s-]priority\b", "low"),
        (r"\b(?:with\s+)?(?:a\s+)?(?:medium|normal|mid)[\s-]priority\b", "medium"),
        (r"\bpriority\s*[:=]?\s*(?P<value>high|medium|low)\b", ""),
        (r"(?:,\s*|\b)(?:it'?s\s+)?(?:very\s+)?(?:urgent|asap|important|critical)\b!*", "high"),
        (r"\bnot\s+urgent\b|\bunimportant\b|\bwhenever\b|\bsomeday\b", "low"),
    )
)
_TAG = re.compile(r"(?<![\w&])#(?P<tag>[A-Za-z][\w-]{0,49})")
_TAGGED = re.compile(
    r"\s*\b(?:tagged|tag(?:ged)?\s+(?:it\s+)?(?:as|with)|with\s+(?:the\s+)?tags?|label(?:led)?\s+"
    r"(?:as|with)?)\s+(?P<tags>[\w-]+(?:\s*(?:,|and)\s*[\w-]+)*)",
)
_RECURRENCE: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), value)
    for pattern, value in (
        (r"\b(?:every\s*day|daily|each day)\b", "daily"),
        (r"\b(?:every\s*week|weekly|each week)\b", "weekly"),
        (r"\b(?:every\s*month|monthly|each month)\b", "monthly"),
    )
)
_DESCRIPTION = re.compile(
    r"\s*(?:,\s*|\s+)(?:with\s+(?:the\s+)?(?:description|details?|notes?)|description|details?|"
    r"notes?)\s*[:=]?\s*(?P<text>.+)$",
    re.IGNORECASE,
)
_LIST_TAIL = re.compile(
    rf"\s+(?:to|on|onto|in|into)\s+(?:my|the)\s+(?:{_TASK_WORD}\s+)?(?:list|tasks|todos|"
    r"to-?do list|to do list)\b",
    re.IGNORECASE,
)
_TITLE_LEAD = re.compile(
    rf"^(?:(?:a|an|the|new)\s+)*(?:{_TASK_WORD}\s+)?(?:(?:to|for|about|called|named|titled|that|"
    r"saying|:|-)\s+)?",
    re.IGNORECASE,
)
_RECURRENCE_TAIL = re.compile(r"\s+(?:on|at|every|each)$", re.IGNORECASE)


def _add(rest: str, *, now: datetime, tz: ZoneInfo) -> Command:
    text = rest.strip()
    quoted_title = None
    quoted = re.match(rf"^\s*[{OPEN_QUOTES}](?P<title>.+?)[{CLOSE_QUOTES}](?P<after>.*)$", text)
    if quoted:
        quoted_title, text = quoted["title"].strip(), quoted["after"]

    description = None
    found = _DESCRIPTION.search(text)
    if found:
        description = found["text"].strip().strip(QUOTES).strip() or None
        text = text[: found.start()]

    text, tags = _take_tags(text)
    text, priority = _take_priority(text)
    text, recurrence = _take_recurrence(text)
    due_at = None
    due = find_due(text, now=now, tz=tz)
    if due is not None:
        due_at = due.moment
        text = _without(text, due.start, due.end)
    text = _LIST_TAIL.sub("", text)
    title = quoted_title or _tidy_title(text)
    if not quoted_title and re.fullmatch(rf"{_TASK_WORD}|note|one|something", title, re.I):
        title = ""  # "add a task": the title is still to come
    return Command(
        Intent.ADD,
        title=title or None,
        description=description,
        priority=priority,
        tags=tags,
        due_at=due_at,
        recurrence=recurrence,
    )


def _squeeze(text: str) -> str:
    """Runs of whitespace as one space. Every pattern here reads squeezed text: a pattern that
    starts with ``\\s*`` or ``\\s+`` is quadratic over a long run of spaces."""
    return " ".join(text.split())


def _without(text: str, start: int, end: int) -> str:
    """``text`` with ``text[start:end]`` taken out (squeezed, as every pattern reads it)."""
    return _squeeze(text[:start] + " " + text[end:])


def _take_tags(text: str) -> tuple[str, tuple[str, ...]]:
    tags = [m["tag"].lower() for m in _TAG.finditer(text)]
    text = _squeeze(_TAG.sub(" ", text))
    tagged = _TAGGED.search(fold_case(text))
    if tagged:
        tags += [t.lower() for t in re.split(r"\s*,\s*|\s*\band\b\s*", tagged["tags"]) if t]
        text = _without(text, tagged.start(), tagged.end())
    return text, tuple(dict.fromkeys(tags))


def _take_priority(text: str) -> tuple[str, str | None]:
    folded = fold_case(text)
    for pattern, value in _PRIORITY_WORDS:
        match = pattern.search(folded)
        if match:
            level = value or match["value"].lower()
            return _without(text, match.start(), match.end()), level
    return text, None


def _take_recurrence(text: str) -> tuple[str, str | None]:
    folded = fold_case(text)
    for pattern, value in _RECURRENCE:
        match = pattern.search(folded)
        if match:
            return _without(text, match.start(), match.end()), value
    return text, None


def _tidy_title(text: str) -> str:
    title = " ".join(text.split())
    title = _TITLE_LEAD.sub("", title)
    title = _RECURRENCE_TAIL.sub("", title)
    title = re.sub(r"\s+(?:by|on|at|due|for|before)$", "", title, flags=re.IGNORECASE)
    title = title.strip(" ,.;:!?" + DASHES).strip(QUOTES).strip()
    if not title:
        return ""
    return title[0].upper() + title[1:]


# --- edits -----------------------------------------------------------------------------------

_FIELD_NAMES = {
    "title": "title",
    "name": "title",
    "description": "description",
    "details": "description",
    "note": "description",
    "notes": "description",
    "priority": "priority",
    "due date": "due_at",
    "due time": "due_at",
    "deadline": "due_at",
    "due": "due_at",
    "tag": "tags",
    "tags": "tags",
}


def _update(groups: dict[str, str], *, now: datetime, tz: ZoneInfo) -> Command | None:
    ref = read_ref(groups["ref"])
    if ref is None:
        return None
    value = groups["value"].strip()
    target = _FIELD_NAMES.get(groups.get("field", "").lower())
    quoted = _quoted(value)
    if re.fullmatch(rf"(?:as\s+)?{_DONE}", value, re.IGNORECASE):
        return Command(Intent.COMPLETE, ref=ref)

    if target in {None, "priority"} and quoted is None:
        _, level = _take_priority(value)
        bare = re.fullmatch(r"(?:a\s+|the\s+)?(high|medium|low|normal)", value, re.IGNORECASE)
        if bare:
            level = "medium" if bare.group(1).lower() == "normal" else bare.group(1).lower()
        if level is not None and (target == "priority" or bare or _only_priority(value)):
            return Command(Intent.UPDATE, ref=ref, priority=level)
        if target == "priority":
            return None
    if target in {None, "due_at"} and quoted is None:
        moment = parse_due(value, now=now, tz=tz)
        if moment is not None:
            return Command(Intent.UPDATE, ref=ref, due_at=moment)
        if target == "due_at":
            return None
    if target == "tags":
        _, tags = _take_tags(" ".join(f"#{t.lstrip('#')}" for t in re.split(r"[\s,]+", value)))
        return Command(Intent.UPDATE, ref=ref, tags=tags) if tags else None
    if target == "description":
        return Command(Intent.UPDATE, ref=ref, description=quoted or value)
    title = quoted or value.strip(" .!?")
    if not title:
        return None
    return Command(Intent.UPDATE, ref=ref, title=title[0].upper() + title[1:])


def _only_priority(value: str) -> bool:
    return re.fullmatch(_PRIORITY_VALUE, value.strip(), re.IGNORECASE) is not None


# --- lists -----------------------------------------------------------------------------------

_STATUS_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), value)
    for pattern, value in (
        (r"\ball\b|\beverything\b|\bevery task\b", "all"),
        (
            r"\b(?:pending|open|incomplete|unfinished|outstanding|remaining|left|to ?do|"
            r"not (?:yet )?(?:done|completed|finished)|undone|active|overdue|still have)\b",
            "pending",
        ),
        (
            r"\b(?:completed?|done|finished|accomplished|achieved|ticked off|checked off|"
            r"did i (?:do|finish))\b",
            "completed",
        ),
    )
)
_SEARCH = re.compile(
    r"\b(?:about|containing|mentioning|matching|with the words?|called|named|titled|"
    r"related to|regarding|that mention|that contain|with)\s+"
    rf"(?P<q>[{OPEN_QUOTES}]?[\w\s'-]+?[{CLOSE_QUOTES}]?)"
    r"(?:\s+(?:in|on)\s+(?:them|it|the title))?$",
    re.IGNORECASE,
)


_ABOUT_TASKS = re.compile(
    rf"\b(?:{_TASK_WORD}|list|pending|completed?|done|finished|due|left|to ?do|overdue|priority|"
    r"urgent|important|open|outstanding|remaining|incomplete|unfinished|accomplished|"
    r"on my plate|agenda|everything|schedule)\b|#\w",
)


def _list(groups: dict[str, str], sentence: str, *, now: datetime, tz: ZoneInfo) -> Command | None:
    rest = groups.get("rest", "")
    q = groups.get("q")
    if q is not None:
        words = _search_words(q)
        return Command(Intent.LIST, filters=ListFilters(q=words)) if words else None
    folded = fold_case(sentence)
    if not _ABOUT_TASKS.search(folded):
        return None  # "what is the weather?" is not a question about tasks

    status = "all"
    found_statuses = [value for pattern, value in _STATUS_WORDS if pattern.search(folded)]
    # "all my pending tasks" is pending: a specific status wins over "all".
    specific = [value for value in found_statuses if value != "all"]
    if specific:
        status = specific[0]

    _, priority = _take_priority(sentence)
    tag_match = _TAG.search(sentence)
    tag = tag_match["tag"].lower() if tag_match else None
    search = _SEARCH.search(rest)
    q = _search_words(search["q"]) if search else None

    due_before, due_after = _due_window(sentence, now=now, tz=tz)
    return Command(
        Intent.LIST,
        filters=ListFilters(
            status=status,
            priority=priority,
            tag=tag,
            q=q,
            due_before=due_before,
            due_after=due_after,
        ),
    )


def _search_words(text: str) -> str | None:
    words = text.strip().strip(QUOTES + "?.!").strip()
    words = re.sub(rf"^(?:the\s+)?(?:word\s+)?|\s+{_TASK_WORD}$", "", words, flags=re.IGNORECASE)
    return words or None


def _due_window(
    sentence: str, *, now: datetime, tz: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    """(due_before, due_after) for "overdue", "due today", "due this week", "due before X"."""
    lowered = sentence.lower()
    local = now.astimezone(tz)
    start_of_today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if "overdue" in lowered or "late" in lowered.split():
        return now.astimezone(tz).replace(microsecond=0), None
    window = re.search(r"\bdue\s+(?P<when>.+)$", lowered)
    if window is None:
        window = re.search(r"\b(?P<when>today|tomorrow|this week|next week)\b", lowered)
        if window is None:
            return None, None
    when = window["when"].strip(" ?.!")
    day = timedelta(days=1)
    if when in {"today", "tonight"}:
        return start_of_today + day, start_of_today
    if when == "tomorrow":
        return start_of_today + 2 * day, start_of_today + day
    if when in {"this week", "within a week", "in the next week"}:
        end_of_week = start_of_today + (7 - local.weekday()) * day
        return end_of_week, start_of_today
    if when == "next week":
        start = start_of_today + (7 - local.weekday()) * day
        return start + 7 * day, start
    before = re.match(r"(?:before|by|until)\s+(?P<date>.+)$", when)
    if before:
        moment = parse_due(before["date"], now=now, tz=tz)
        return (moment, None) if moment else (None, None)
    moment = parse_due(when, now=now, tz=tz)
    if moment is not None:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start + day, start
    return None, None


_COMMAND_START = re.compile(
    r"^(?:see|view|show|list|display|check|add|create|delete|remove|cancel|mark|complete|finish|"
    r"change|update|rename|edit|move|reschedule|know what|find|search)\b",
    re.IGNORECASE,
)


def _starts_with_command(text: str) -> bool:
    return _COMMAND_START.match(text.strip()) is not None
