"""Everyday English to a structured command, for the rule-based agent.

``understand(text, now=..., tz=...) -> Command``. Deterministic and table-driven. One
vocabulary (``VOCABULARY``: the verbs and synonyms of every action, the polite and indirect
frames such as "can you", "would you mind", and the fillers such as "um", "right now") is
shared by every intent. Each reading in ``RULES`` is (intent, score, pattern): every reading
whose pattern matches the cleaned sentence, and whose pieces make sense, is an interpretation
with that score (a full sentence shape scores higher than a shape with a catch-all part, a
verb alone scores low). The best interpretation above ``THRESHOLD`` wins; a close second of
another intent, or only low scores while the message talks about tasks, is ``Intent.CLARIFY``
naming the options: a question, never a guess. The named groups carry the pieces (``ref`` a
task reference, ``rest`` a new task's text, ``field``/``value`` an edit), read by small
helpers: task references (``task 3``, ``it``, ``the meeting task``), priorities, tags, due
dates (``dates``), recurrence and list filters. Nothing here calls a tool.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from chat_service.agents.dates import (
    NUMBER_WORDS,
    WEEKDAYS,
    find_due,
    fold_case,
    on_day,
    parse_due,
)


class Intent(StrEnum):
    GREETING = "greeting"
    THANKS = "thanks"
    HELP = "help"
    ADD = "add"  # one task, or several in ``Command.items``
    LIST = "list"  # also counting (``Command.count``) and history questions
    COMPLETE = "complete"
    FACT = "fact"  # completion stated as a fact: "I bought the groceries"
    REOPEN = "reopen"
    UNDO = "undo"  # "undo that": the last change of the conversation, reverted
    SNOOZE = "snooze"  # "remind me again in 10 minutes": the latest unread reminder, later
    DISMISS = "dismiss"  # "dismiss it", "got it": the latest unread reminder, read
    DELETE = "delete"
    UPDATE = "update"
    ANSWER = "answer"  # a bare reference, answering "which one?"
    CLARIFY = "clarify"  # several readings, or too weak a one: ask, naming ``options``
    # Several requests in one message ("add milk and delete task 3"): ``Command.steps``, each
    # with the words it was said in (``said``), run in order.
    SEVERAL = "several"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TaskRef:
    """How a sentence points at a task: by id(s), by pronoun, by ordinal or by title words;
    or at every task matching ``filters`` (``bulk``: "all completed tasks")."""

    ids: tuple[int, ...] = ()
    pronoun: bool = False
    ordinal: int | None = None  # 1-based; -1 for "the last one"
    title: str | None = None
    bulk: bool = False  # "all", "everything": every task matching ``filters``
    filters: ListFilters | None = None
    # "call mom and buy milk", "milk, dentist and the bill": the title words of each task,
    # when ``title`` (the whole phrase) may name several tasks.
    titles: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListFilters:
    status: str = "all"
    priority: str | None = None
    tag: str | None = None
    q: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None
    sort: str | None = None  # list_tasks's ``sort``: "due", "priority", "title"

    def arguments(self) -> dict[str, object]:
        """The list_tasks arguments: status always, the rest only when set."""
        arguments: dict[str, object] = {"status": self.status}
        for name in ("priority", "tag", "q"):
            value = getattr(self, name)
            if value is not None:
                arguments[name] = value
        for name in ("due_before", "due_after", "completed_after", "completed_before"):
            moment = getattr(self, name)
            if moment is not None:
                arguments[name] = moment.isoformat()
        sort = self.sort
        if sort is None and (self.due_before is not None or self.due_after is not None):
            # What is due in a window is read soonest first, and the soonest are kept when
            # more match than one answer lists.
            sort = "due"
        if sort is not None:
            arguments["sort"] = sort
        return arguments


@dataclass(frozen=True)
class Reminder:
    """One reminder of a task: at an instant, or some minutes before its due date."""

    at: datetime | None = None
    before_due_minutes: int | None = None

    def argument(self) -> dict[str, object]:
        """The reminder as the todo tools take it (exactly one key)."""
        if self.at is not None:
            return {"at": self.at.isoformat()}
        return {"before_due_minutes": self.before_due_minutes or 0}


@dataclass(frozen=True)
class Command:
    intent: Intent
    ref: TaskRef | None = None
    title: str | None = None
    description: str | None = None
    priority: str | None = None
    # A new task's tags; with an edit, the tags that replace the task's own ("set the tags of
    # task 3 to home, work").
    tags: tuple[str, ...] = ()
    due_at: datetime | None = None
    recurrence: str | None = None
    filters: ListFilters = field(default_factory=ListFilters)
    items: tuple[Command, ...] = ()  # several new tasks in one message
    count: bool = False  # "how many ...": answer with the number
    fact: str | None = None  # the words of a completion stated as a fact
    options: tuple[Intent, ...] = ()  # what a clarifying question offers
    clear: tuple[str, ...] = ()  # fields an edit empties ("due_at", "description")
    # Which parts of ``due_at`` the words gave: "date", "time" or "both". A move to another
    # day keeps the task's time of day; "make it 4pm" keeps its day. "hour": a bare number
    # ("make that 11"), a time only for a task that has a due date.
    due_given: str = "both"
    score: float = 1.0  # how sure the reading is
    # The task's reminders: None leaves them as they are, () removes them all.
    reminders: tuple[Reminder, ...] | None = None
    minutes: int | None = None  # how long a snooze lasts
    # "push the report back a day": the due date moved by this many minutes (earlier when
    # negative) from the task's current one, which the agent reads from the todo service.
    shift_minutes: int | None = None
    # A question about one task (``ref``): "due" (when is it due?), "done" (did I do what it
    # says? "did I pay the bill", the words starting with its verb) or "status" (is the task
    # named done? "is the dentist done", "what's the status of task 3").
    asks: str | None = None
    # "make the report due after lunch": the words of a due date the dates do not read. The
    # agent asks when the task is due instead of adding or renaming anything.
    unread_when: str | None = None
    # "every monday and thursday": the days of the week a new task was asked to repeat on,
    # which no task's repetition holds (weekly is one day). The agent asks instead of adding.
    weekdays: tuple[str, ...] = ()
    # A delete of title words alone ("cancel my gym membership", "remove the trash"): the whole
    # sentence as a new task's title, in case the words name a chore rather than a task. A
    # task that holds all of it, verb too, is that chore said again: the agent asks before
    # deleting it.
    chore: str | None = None
    # The same chore in the user's own words, times, priorities and tags kept ("cancel my 3pm
    # call", not "Cancel my call"): what the agent quotes and offers to add.
    chore_said: str | None = None
    # How much a delete by such words is in doubt when its verb is an everyday chore too:
    # "partial", said of a thing ("clear the table"), the agent asks before deleting a task
    # the words do not name whole (Book a table); "any", said of the user's own thing
    # ("cancel my gym membership"), it asks before deleting any. With no task found, the
    # agent says how to add the chore as a new task.
    doubt: str | None = None
    # "every 3 days", "twice a day": the words of a repetition no task holds (it repeats daily,
    # weekly or monthly). The agent says so instead of adding the task.
    repeats: str | None = None
    # An edit's tags joining the task's own ("tag task 3 #home") or leaving them ("untag task
    # 3 #home"), the others kept: the agent reads the task's tags first.
    added_tags: tuple[str, ...] = ()
    removed_tags: tuple[str, ...] = ()
    # ``Intent.SEVERAL``: the requests, in the order said. A step whose intent is not one of
    # ``STEP_INTENTS`` could not be read on its own: the agent then runs none of them.
    steps: tuple[Command, ...] = ()
    # A step's own words ("delete task 3"), for a reply about what was done or is waiting.
    said: str | None = None


# Straight and typographic quotes, as phones type them.
OPEN_QUOTES = "\"'\u201c\u2018"
CLOSE_QUOTES = "\"'\u201d\u2019"
QUOTES = OPEN_QUOTES + CLOSE_QUOTES
DASHES = "-\u2013\u2014"


# --- the vocabulary --------------------------------------------------------------------------
# Every verb and synonym once; the readings below are built from these lists.

VOCABULARY: dict[str, tuple[str, ...]] = {
    "task": (
        "tasks",
        "task",
        "todos",
        "todo",
        "to-dos",
        "to-do",
        "items",
        "item",
        "reminders",
        "reminder",
    ),
    "add": (
        "add",
        "create",
        "insert",
        "log",
        "jot down",
        "write down",
        "note down",
        "put",
        "make",
        "new",
        "schedule",
        "set up",
        "enter",
        "record",
        "put down",
    ),
    "remember": (
        "remind me",
        "remember",
        "don't let me forget",
        "dont let me forget",
        "do not let me forget",
        "make sure i",
        "note to self",
        "don't forget to",
        "dont forget to",
        "do not forget to",
        "don't forget",
        "note that",
        "make a note that",
        "make a note to",
        "make a note of",
        "jot down that",
    ),
    "complete": (
        "complete",
        "finish",
        "close",
        "tick off",
        "check off",
        "cross off",
        "cross out",
        "strike off",
        "knock off",
        "mark off",
        "tick",
    ),
    "mark": ("mark", "set", "flag", "tick", "check"),
    "done": (
        "complete",
        "completed",
        "done",
        "finished",
        "finish",
        "checked off",
        "ticked off",
        "crossed off",
        "sorted",
        "taken care of",
        "dealt with",
    ),
    "not_done": (
        "not done",
        "not complete",
        "not completed",
        "not finished",
        "incomplete",
        "undone",
        "unfinished",
        "pending",
        "open",
        "not yet done",
        "to do",
    ),
    "reopen": (
        "reopen",
        "re-open",
        "uncomplete",
        "unmark",
        "uncheck",
        "untick",
        "restore",
        "un-complete",
        "un-check",
        "untick",
        "un-tick",
        "unfinish",
        "reactivate",
        "re-activate",
        "redo",
        "undo completing",
        "undo finishing",
        "undo the completion of",
        "undo marking",
        "unmark the completion of",
        "bring back",
        "revive",
    ),
    "undo": ("undo", "revert", "take back", "undo the last", "reverse"),
    "delete": (
        "delete",
        "remove",
        "erase",
        "cancel",
        "drop",
        "discard",
        "trash",
        "scrap",
        "get rid of",
        "forget about",
        "forget",
        "bin",
        "clear",
        "wipe",
        "ditch",
        "take off",
        "cross out",
        "clear out",
        "del",
        "rm",
        "scratch",
        "strike",
        "kill",
        "nuke",
        "zap",
        "toss",
        "throw out",
        "throw away",
        "chuck out",
    ),
    "edit": (
        "change",
        "rename",
        "update",
        "edit",
        "modify",
        "set",
        "retitle",
        "reword",
        "alter",
        "switch",
    ),
    "move": (
        "move",
        "reschedule",
        "postpone",
        "push back",
        "push",
        "delay",
        "defer",
        "shift",
        "bump",
        "bring forward",
        "put off",
    ),
    "show": (
        "show",
        "count",
        "list",
        "display",
        "view",
        "see",
        "give",
        "tell",
        "read",
        "print",
        "fetch",
        "check",
        "pull up",
        "open",
        "what's on",
        "whats on",
    ),
    "search": ("search", "find", "look for", "look up", "lookup"),
    # The indirect and polite frames a request may start with ("can you add ...").
    "frame": (
        "can you please",
        "could you please",
        "would you please",
        "will you please",
        "can u",
        "could u",
        "can you",
        "could you",
        "would you",
        "will you",
        "would you mind",
        "do you mind",
        "would it be possible to",
        "is it possible to",
        "i'd like you to",
        "i would like you to",
        "i want you to",
        "i'd like to",
        "i would like to",
        "i need you to",
        "go ahead and",
        "let's",
        "lets",
        "please",
        "pls",
        "plz",
        "kindly",
        "help me",
        "i'd love it if you could",
        "you can",
        "you could",
        "can you just",
        "i'd appreciate it if you could",
        "i'd appreciate it if you would",
        "i'd appreciate it if you'd",
        "i would appreciate it if you could",
        "i'd be grateful if you could",
        "it would be great if you could",
        "it'd be great if you could",
        "would you be able to",
        "will you be able to",
        "are you able to",
        "could i get you to",
        "would it be possible for you to",
        "would you be so kind as to",
        "would you kindly",
        "could you possibly",
        "can you possibly",
        "could you maybe",
        "can you maybe",
        "perhaps you could",
        "maybe you could",
        "if you don't mind",
        "if it's not too much trouble",
        "if it isn't too much trouble",
        "can i get you to",
        "let me",
        "mind",
    ),
    # Words that carry nothing, anywhere in a message (outside a quoted title).
    "filler": (
        "um",
        "umm",
        "ummm",
        "uh",
        "uhh",
        "uh-huh",
        "er",
        "erm",
        "hmm",
        "please",
        "pls",
        "plz",
        "kindly",
        "for me",
        "right now",
        "real quick",
        "quickly",
        "basically",
        "actually",
        "like,",
        "you know",
        "i guess",
        "i think",
        "if you can",
        "if you could",
        "if possible",
        "when you get a chance",
        "thanks",
        "thank you",
        "cheers",
    ),
}


def _any(*groups: str) -> str:
    """One alternation of the vocabulary's groups, longest phrases first."""
    words = sorted({w for g in groups for w in VOCABULARY[g]}, key=len, reverse=True)
    return "(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in words) + ")"


_TASK_WORD = _any("task")
# The task word as the filler of "add task buy milk", dropped from a title: not before "list",
# where it is part of a noun ("add todo list review" is Todo list review), unless "list" is
# the verb of what follows ("add task list the bike on ebay" is List the bike on ebay).
_FILLER_TASK_WORD = rf"{_TASK_WORD}(?!\s+lists?\b(?!\s+(?:the|a|an|my|our|your|all|some)\b))"
_DONE = _any("done")
_NOT_DONE = _any("not_done")
_PRIORITY_VALUE = (
    r"(?:(?:a\s+|the\s+)?(?:high|low|medium|normal|top|highest|lowest)(?:[\s-]priority)?|urgent"
    r"|important|not urgent|unimportant|a priority|top priority)"
)
_FIELD = (
    r"(?P<field>title|name|description|details|notes?|priority|due date|due time|deadline|"
    r"due|tags?)"
)
_EDIT = _any("edit")
# The tags an edit names: "#home", "home, work and errands". At most the ten a task holds, so
# a lazy part before the list (the task) meets a bounded list wherever it ends: linear.
_TAG_SEPARATOR = r"\s*,\s*(?:and\s+)?|\s+and\s+"
_TAG_LIST = rf"#?[\w-]+(?:(?:{_TAG_SEPARATOR})#?[\w-]+){{0,9}}"
# A task named by its number(s) ("task 3", "#3": a bare number may begin a title, "2 factor
# auth") or as "it" ends there, so a space parts its tags too ("tag task 3 home work"); after
# title words only a comma or "and" does, the last word being perhaps the title's ("tag the
# milk task groceries", "tag that report as work"). Words that join a sentence are no tags:
# with one among them ("tag task 3 work as well", "tag it support tickets as urgent") the
# words are read as the other rules read them.
_NUMBERED_REF = (
    rf"(?:{_TASK_WORD}\s*|#)\d+(?:(?:{_TAG_SEPARATOR})(?:{_TASK_WORD}\s*)?#?\d+){{0,9}}|it"
)
_NOT_A_TAG = (
    r"(?:a|an|the|as|with|to|for|too|also|well|and|or|of|in|on|at|by|it|is|its|my|this|that|"
    r"please|tag|tags|label|labels|task|tasks|todo)"
)
_SPACED_TAG = rf"#?(?!{_NOT_A_TAG}(?![\w-]))[\w-]+"
_TAG_WORDS = rf"{_SPACED_TAG}(?:(?:{_TAG_SEPARATOR}|\s+){_SPACED_TAG}){{0,9}}"
# Between a task and its tags ("tag task 1 and errands", "tag task 3 with the tag home"), and
# after them ("tag task 3 work too"): words of the sentence, no tags.
_TAG_JOINER = r"\s+(?:and\s+|as\s+|with\s+(?:the\s+)?(?:(?:tags?|labels?)\s+)?)?"
_TAG_TAIL = r"(?:\s+(?:too|as\s+well|also|please))?$"
_PAST_VERBS = (
    r"(?:bought|paid|sent|called|emailed|mailed|phoned|rang|texted|messaged|booked|cleaned|"
    r"washed|fixed|finished|completed|did|done|made|took|got|picked up|dropped off|wrote|"
    r"read|submitted|filed|fed|walked|watered|cooked|returned|renewed|posted|ordered|"
    r"collected|cancelled|canceled|visited|met|went to|handed in|signed|packed|mowed|"
    r"vacuumed|ironed|tidied|sorted|replied to|answered|scheduled|prepared|practiced|"
    r"practised|studied|reviewed|printed|uploaded|downloaded|installed|updated|paid off|"
    r"emptied|took out|charged|backed up|recycled|repaired|\w+ed)"
)

# (intent, score, pattern). Every matching reading is considered; the highest score wins.
# Scores: 1.0 a complete sentence shape with nothing left to chance; 0.9 a shape with a
# free-text part; 0.8 a general shape another intent may share; 0.5-0.6 a verb alone.


_PASSIVE_CLUES = (
    "ed",
    "ready",
    "sorted",
    "over",
    "in",
    "off",
    "done",
    "paid",
    "bought",
    "sent",
    "made",
    "got",
    "taken",
)
# Each past tense of _PAST_VERBS by its first word, and "ed" for the regular ones.
_PAST_CLUES = tuple(
    {w.split()[0] for w in re.findall(r"[a-z][a-z ]*", _PAST_VERBS.replace(r"\w+ed", ""))} | {"ed"}
)
_DONE_CLUES = ("complete", "done", "finish", "off", "sorted", "taken care", "dealt with")
# A span of time: "an hour", "10 minutes", "half an hour", "two days", "15 mins", "1h".
_OFFSET = (
    r"(?:half an hour|an hour and a half|a quarter of an hour|(?:an?|one|two|three|four|five|six|"
    r"\d{1,5})\s*(?:minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|wks?))"
)
_OFFSET_PARTS = re.compile(
    r"^(?P<count>an?|one|two|three|four|five|six|\d{1,5})\s*(?P<unit>minutes?|mins?|m|hours?|hrs?|"
    r"h|days?|d|weeks?|wks?)$",
    re.IGNORECASE,
)
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}


def offset_minutes(text: str) -> int | None:
    """The minutes of a span of time ("an hour" -> 60, "half an hour" -> 30)."""
    spoken = " ".join(text.lower().split())
    if spoken == "half an hour":
        return 30
    if spoken == "a quarter of an hour":
        return 15
    if spoken == "an hour and a half":
        return 90
    parts = _OFFSET_PARTS.match(spoken)
    if parts is None:
        return None
    count = parts["count"]
    number = int(count) if count.isdigit() else NUMBER_WORDS[count]
    return number * _UNIT_MINUTES[parts["unit"][0]]


# Words without which a reading's pattern cannot match, given with the reading (see _CLUES).
_GIVEN_CLUES: dict[re.Pattern[str], tuple[str, ...]] = {}


def _rule(
    intent: Intent, score: float, pattern: str, *, clues: tuple[str, ...] = ()
) -> tuple[Intent, float, re.Pattern[str]]:
    compiled = re.compile(pattern, re.IGNORECASE)
    if clues:
        _GIVEN_CLUES[compiled] = clues
    return intent, score, compiled


RULES: tuple[tuple[Intent, float, re.Pattern[str]], ...] = (
    _rule(
        Intent.GREETING,
        1.0,
        r"^(?:(?:hi|hello|hey|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening|day))"
        r"(?:,?\s+(?:there|again|assistant|bot|friend|you|all))?|what'?s up|sup|"
        r"how are you(?: doing)?|"
        r"how'?s it going|how are things|are you there|anyone there|what'?s new|morning|evening|"
        r"afternoon)(?:,? how are you(?: doing)?(?: today)?)?$",
    ),
    _rule(
        Intent.THANKS,
        1.0,
        r"^(?:thanks|thank you|thx|ty|cheers|great|perfect|awesome|cool|nice|ok|okay|got it|"
        r"good|great thanks|ok thanks|cool thanks|bye|goodbye|bye bye|good night|goodnight|"
        r"see you|see ya|later|cya|that's all|thats all|that is all|nothing else|"
        r"that's it|you're great|you are great|you're awesome|you rock|love it|well done|"
        r"good job|nice one|much appreciated|appreciate it|no thanks|all good|"
        r"that(?:'s| is| was) (?:helpful|great|perfect|awesome|brilliant|useful|all i needed)|"
        r"great job|great work|nice work|good work|love you|i love (?:it|this|you)|"
        r"(?:haha|hah|lol|hehe)(?:,? (?:thanks|thank you|ok|okay|nice))?|"
        r"thanks for (?:the|your|all the) help|thanks for (?:that|everything|helping(?: me)?)|"
        r"i appreciate (?:it|that|you|your help)|sorry|never ?mind|nvm|no worries|no problem|np|"
        r"(?:cool|ok|okay|great|perfect|awesome|nice|nice one|brilliant|lovely|sweet|excellent),? "
        r"(?:thanks|thank you|thx|cheers|cool|great|perfect)|"
        r"ok cool|okay cool|ok great|sounds good|brilliant|lovely|sweet|excellent|"
        r"(?:thanks|thank you),? (?:that's all|that is all|bye|see you)|"
        r"(?:see you|see ya|talk to you|ttyl|catch you)(?: later| soon| tomorrow| around)?|"
        r"you're the best|you are the best|you're amazing|you're a star|legend|"
        r"that's all for (?:now|today)|that will be all|that'll be all|"
        r"(?:i'?m |i am )?(?:all )?done for (?:now|today|the day)|"
        r"(?:cheers|thanks|thank you|ta) (?:mate|buddy|pal|man|a lot|heaps)|"
        r"you(?:'re| are) (?:a |an |the |so |such a )?(?:real |absolute |total )?(?:lifesaver|"
        r"life saver|star|superstar|legend|gem|genius|hero|champ|angel|best|great|amazing|"
        r"awesome|brilliant|helpful|wonderful|fantastic|lovely))"
        r"(?:\s+(?:so much|a lot|very much|again|for now|for today|then|a bunch|a million|"
        r"loads|heaps|a ton))?"
        r"(?:,? (?:thanks|thank you|cheers|thx|bye))?$",
    ),
    _rule(
        Intent.HELP,
        1.0,
        r"^(?:help|help me|what can you do|what else can you do|what do you do|"
        r"how (?:do|does) (?:this|it|you) work|how can you help(?: me)?|"
        r"what can you help(?: me)?(?: with)?|what (?:do|can) you help with|"
        r"what(?:'s| is) your name|are you (?:a |an )?(?:robot|bot|human|ai|person|real)|"
        r"what are you for|what is this for|how do you work|"
        r"what are (?:your|the) commands|commands|who are you|what are you|help me out|"
        r"who made you|what is this|what's this|i'?m lost|i need help|can you help(?: me)?|"
        r"what can i do with you|examples?|show me examples|how does this work|menu|options|"
        r"how (?:do|can|should) i (?:use (?:this|you|it)|\w+ (?:a |an )?(?:tasks?|things?|"
        r"reminders?|items?|todos?)(?: \w+)?)|what can i (?:say|ask|do)(?: here)?|"
        r"what (?:commands|things) (?:can|do) you (?:understand|know))$",
    ),
    _rule(
        Intent.ANSWER,
        1.0,
        rf"^(?P<ref>(?:the\s+)?(?:{_TASK_WORD}\s*)?(?:number\s+|no\.?\s*)?#?\d+|"
        r"(?:the\s+)?(?:first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th)"
        r"(?:\s+one)?)$",
    ),
    _rule(
        Intent.UNDO,
        1.0,
        r"^(?:oops,?\s+|sorry,?\s+)?(?:i\s+)?(?:didn'?t|did not) mean (?:to|that)\b.*$|"
        r"^(?:oops,?\s+)?(?:that|this) (?:was|is) (?:a mistake|wrong|an accident|not what i meant|"
        r"a typo)$|^(?:my bad|wrong one|oops|whoops|go back|take that back|cancel that|"
        r"reverse that|scratch that|put it back(?: the way it was)?)$",
    ),
    _rule(
        Intent.UNDO,
        1.0,
        rf"^(?:oops,?\s+)?(?:{_any('undo')})(?:\s+(?:that|it|this|the last (?:one|change|"
        r"action|thing)|my last (?:change|action)|what you just did|please))?$",
    ),
    _rule(
        Intent.REOPEN,
        1.0,
        rf"^(?:{_any('mark')}|make|put|move|change|turn|revert|switch|flip)\s+(?P<ref>.+?)\s+(?:back\s+)?"
        r"(?:as\s+|to\s+)?"
        rf"(?:un-?done|{_NOT_DONE}|active|incomplete|open)(?:\s+again)?$",
    ),
    _rule(
        Intent.REOPEN,
        1.0,
        r"^(?:i'?m|i am|we'?re|we are)\s+(?:not|n't)\s+(?:really\s+|actually\s+|quite\s+)?"
        r"(?:done|finished)\s+with\s+(?P<ref>.+?)(?:\s+(?:yet|after all|actually))?$",
    ),
    _rule(
        Intent.REOPEN,
        1.0,
        r"^(?P<ref>.+?)\s+(?:needs|need)\s+(?:to be\s+)?(?:redone|redoing|doing again|reopening)$",
    ),
    _rule(
        Intent.REOPEN,
        1.0,
        r"^(?:put|add|move|bring)\s+(?P<ref>.+?)\s+back\s+(?:on|onto|in|into|to)\s+"
        r"(?:my\s+|the\s+)?(?:to-?do\s+|task\s+)?(?:list|tasks|todos)$",
    ),
    _rule(
        Intent.REOPEN,
        1.0,
        r"^(?P<ref>.+?)\s+(?:still\s+needs?\s+(?:doing|to be done|work|finishing|to be finished)|"
        r"needs?\s+(?:doing|to be done|work|finishing|to be finished)\s+"
        r"(?:again|still|after all))$",
    ),
    _rule(
        Intent.REOPEN,
        1.0,
        r"^i\s+(?:marked|ticked|checked|completed|finished|crossed)\s+(?:off\s+)?(?P<ref>.+?)"
        r"(?:\s+(?:as\s+)?(?:done|complete|completed|off|finished))?\s+(?:by mistake|by accident|"
        r"accidentally|in error|too early|too soon|wrongly)$",
    ),
    _rule(
        Intent.REOPEN,
        1.0,
        r"^i\s+(?:accidentally|mistakenly|wrongly)\s+(?:marked|ticked|checked|completed|finished|"
        r"crossed)\s+(?:off\s+)?(?P<ref>.+?)(?:\s+(?:as\s+)?(?:done|complete|completed|off|"
        r"finished))?$",
    ),
    _rule(Intent.REOPEN, 1.0, rf"^(?:{_any('reopen')})\s+(?P<ref>.+)$"),
    _rule(
        Intent.REOPEN,
        1.0,
        rf"^(?:oops,?\s+|wait,?\s+|no,?\s+|actually,?\s+)*+(?P<ref>.+?)(?:\s+still)?\s*(?:is|'s|was|"
        rf"are|were|has|have|should|must)(?:\s+still)?(?:\s+not|n't)\s+(?:really\s+|actually\s+|"
        rf"yet\s+|been\s+|be\s+)?{_DONE}"
        r"(?:\s+(?:yet|actually|after all|anymore|any more|really))?$",
    ),
    _rule(
        Intent.REOPEN,
        0.9,
        r"^(?:i\s+)?(?:didn'?t|did not|haven'?t|have not|never)\s+(?:actually\s+|really\s+)?"
        r"(?:finish|complete|do|done|finished|completed)\s+(?P<ref>.+?)(?:\s+(?:yet|after all))?$",
    ),
    _rule(
        Intent.COMPLETE,
        1.0,
        rf"^(?:{_any('mark')})\s+(?P<ref>.+?)\s+(?:as\s+|to\s+)?{_DONE}$",
    ),
    _rule(Intent.COMPLETE, 0.95, rf"^(?:{_any('complete')})\s+(?P<ref>.+)$"),
    _rule(
        Intent.COMPLETE,
        0.95,
        rf"^(?:{_DONE}|finished with)\s*[:!-]\s*(?P<ref>.+)$",
    ),
    _rule(
        Intent.COMPLETE,
        0.95,
        r"^(?:tick|check|cross|mark|strike|knock)\s+(?P<ref>.+?)\s+off(?:\s+(?:my|the)\s+"
        r"(?:[\w-]+\s+)?list)?$",
    ),
    _rule(
        Intent.COMPLETE,
        0.95,
        rf"^(?P<ref>.+?)\s*(?:-|:|\u2013|\u2014)\s*{_DONE}$",
    ),
    _rule(
        Intent.COMPLETE,
        0.9,
        rf"^(?:{_any('mark')})\s+(?P<ref>.+?)\s+as\s+{_PAST_VERBS}$",
    ),
    _rule(Intent.COMPLETE, 0.9, r"^(?:i'?m\s+)?(?:all\s+)?done with\s+(?P<ref>.+)$"),
    _rule(
        Intent.COMPLETE,
        0.9,
        r"^(?:i\s+|i've\s+|i have\s+|we\s+)?(?:just\s+|already\s+|now\s+|finally\s+)?(?:done|did|"
        r"finished|completed)\s+(?P<ref>.+)$",
    ),
    _rule(
        Intent.COMPLETE,
        0.9,
        rf"^(?P<ref>.+?)(?:\s+(?:is|are|was|has been)|'s)\s+(?:now\s+|all\s+|finally\s+)?{_DONE}$",
    ),
    _rule(
        Intent.FACT,
        0.85,
        r"^(?:(?:today|this morning|this afternoon|earlier|earlier today|yesterday|last night|"
        r"just now),?\s+)?(?:i\s+|i've\s+|i have\s+|we\s+|we've\s+|just\s+)?"
        r"(?:just\s+|already\s+|finally\s+|now\s+|also\s+|successfully\s+|actually\s+)?"
        rf"(?P<verb>{_PAST_VERBS})\s+(?P<rest>.+)$",
    ),
    # "emails sent", "report - submitted": a thing and what was done to it.
    _rule(
        Intent.FACT,
        0.8,
        r"^(?P<rest>[\w' ]{2,80}?)(?:\s*[:\u2013\u2014-])?\s+(?:all\s+|now\s+)?"
        rf"(?P<verb>{_PAST_VERBS})$",
        clues=_PAST_CLUES,
    ),
    _rule(Intent.DELETE, 0.93, rf"^(?P<deleting>{_any('delete')})\s+(?P<ref>.+)$"),
    _rule(
        Intent.FACT,
        0.85,
        rf"^(?P<rest>.+?)(?:\s+(?:is|are|was|were|has been|have been|got|is all|are all)|'s)\s+"
        rf"(?:now\s+|finally\s+|all\s+|already\s+)?(?P<verb>{_PAST_VERBS}|ready|sorted|handled|"
        r"taken care of|over|sent off|in|off)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:remove|clear|delete|drop|take off|unset|get rid of)\s+(?:the\s+)?(?P<clear>due date|"
        r"deadline|due time|due|date|description|notes?|details)\s+(?:from|of|on|for)\s+"
        r"(?P<ref>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^add\s+(?:the\s+|a\s+)?(?:tags?|labels?)\s+(?P<added>{_TAG_LIST})\s+to\s+(?P<ref>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        r"^add\s+(?:a\s+|the\s+)?(?P<field>note|notes|description|details)\s+(?:to|on)\s+"
        r"(?P<ref>.+?)\s*(?::|saying|that says)\s*(?P<value>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^{_EDIT}\s+(?P<ref>.+?)\s*:\s*{_FIELD}\s*:?\s+(?P<value>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?P<level>lower|raise|increase|decrease|bump up|bump down|reduce|drop|up)\s+"
        r"(?:the\s+)?priority\s+(?:of|on|for)\s+(?P<ref>.+)$",
    ),
    # "bump the dentist to high priority", "drop task 3 to low", "raise it up to urgent": the
    # priority it goes to. Anything else after "to" is no priority ("bump the meeting to
    # friday" moves it).
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:bump|raise|lower|drop|move|push|knock|increase|decrease|reduce|upgrade|downgrade|"
        r"escalate)(?:\s+(?:up|down))?\s+(?P<ref>.+?)\s+(?:up\s+|down\s+)?to\s+"
        rf"(?P<value>{_PRIORITY_VALUE})(?P<to_priority>)$",
    ),
    _rule(
        Intent.UPDATE,
        0.95,
        rf"^(?P<ref>.+?)(?:\s+(?:is|are|should be|needs to be|must be|has to be)|'s)\s+"
        r"(?:now\s+|very\s+|really\s+|super\s+)?"
        rf"(?P<value>{_PRIORITY_VALUE})(?:\s+(?:now|again|anymore|any more))?$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^(?:give)\s+(?P<ref>.+?)\s+(?P<value>{_PRIORITY_VALUE})$",
    ),
    _rule(
        Intent.UPDATE,
        0.95,
        r"^(?:i'?d like|i would like|i want|have|get)\s+(?P<ref>.+?)\s+(?:moved|pushed|"
        r"rescheduled|changed|postponed|put off|shifted)\s+(?:back\s+)?(?:to|until|till)\s+"
        r"(?P<value>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^{_EDIT}\s+(?:the\s+)?{_FIELD}\s+(?:of|for|on|in)\s+(?P<ref>.+?)\s+"
        r"(?:to|as|into|:)\s*(?P<value>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^{_EDIT}\s+(?P<ref>.+?)(?:'s|s')?\s+{_FIELD}\s+(?:to|as|into|:)\s*(?P<value>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^(?:make|{_any('mark')})\s+(?P<ref>.+?)\s+(?:as\s+|to\s+)?(?P<value>{_PRIORITY_VALUE})$",
    ),
    _rule(
        Intent.UPDATE,
        0.95,
        r"^(?:make|set|have)\s+(?P<ref>.+?)\s+(?:be\s+)?(?P<value>due\s+.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^(?:tag|label)\s+(?P<ref>{_NUMBERED_REF}){_TAG_JOINER}(?P<added>{_TAG_WORDS}){_TAG_TAIL}",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^(?:tag|label)\s+(?P<ref>.+?)\s+(?:as\s+|with\s+)?(?P<added>{_TAG_LIST}){_TAG_TAIL}",
    ),
    # "untag task 3 #home", "remove the tag home from task 3", "take the #home tag off the
    # report": that tag leaves the task, its others stay.
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^(?:untag|unlabel)\s+(?P<ref>{_NUMBERED_REF}){_TAG_JOINER}(?:from\s+)?"
        rf"(?P<removed>{_TAG_WORDS}){_TAG_TAIL}",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^(?:untag|unlabel)\s+(?P<ref>.+?)\s+(?:as\s+|with\s+|from\s+)?"
        rf"(?P<removed>{_TAG_LIST}){_TAG_TAIL}",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:remove|delete|drop|take|strip)\s+(?:the\s+)?(?:tags?|labels?)\s+"
        rf"(?P<removed>{_TAG_LIST})\s+(?:from|off(?:\s+of)?)\s+(?P<ref>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^(?:remove|delete|drop|take|strip)\s+(?:the\s+)?(?P<removed>{_TAG_LIST})\s+"
        r"(?:tags?|labels?)\s+(?:from|off(?:\s+of)?)\s+(?P<ref>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        0.95,
        rf"^(?P<moving>{_any('move')})\s+(?P<ref>.+?)\s+(?:to|until|till|for|by|back to)\s+"
        r"(?P<value>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        0.9,
        rf"^(?P<verb>{_EDIT})\s+(?P<ref>.+?)(?:\s+(?:to|as|into)\b|\s*:)\s*(?P<value>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        0.95,
        rf"^(?P<ref>(?:{_TASK_WORD}\s*#?\d+|#\d+|it|that|this|the [\w' -]+?))(?:'s\s+|\s+"
        r"(?:is\s+|should be\s+|needs to be\s+|must be\s+)?)"
        # "the report was due yesterday" tells of the past: no new due date, nor a title.
        r"(?<!\swas\s)(?<!\swere\s)(?:now\s+)?(?P<field>due)\s+(?P<value>.+)$",
    ),
    # "book flights is due on the 25th": a title without "the" needs its "is" to be a ref.
    # Not a word that names no task ("something", "a lot"): read as title words, it would
    # move the task that has them ("Parking lot"), and "anything is due ..." asks.
    _rule(
        Intent.UPDATE,
        0.9,
        r"^(?!(?:anything|something|nothing|everything|whatever|whichever|none|one|each|all|"
        r"any|much|more|lots?|a\s+lot|too\s+much|so\s+much|stuff)\b)"
        r"(?P<ref>[\w' -]+?)\s+is\s+(?:now\s+)?(?P<field>due)\s+(?P<value>.+)$",
    ),
    _rule(
        Intent.ADD,
        0.95,
        rf"^(?:{_any('remember')}|i (?:need to|have to|must|should|want to|gotta|got to|'ll|will)"
        r"(?:\s+(?:really|definitely))?\s+remember)"
        r"(?:\s+(?:to|that|about|of)|:)?\s+(?P<rest>.+)$",
    ),
    _rule(
        Intent.ADD,
        0.9,
        rf"^(?:{_any('add')})(?:\s+|\s*:\s*)"
        # Whole words only: "add tomorrow gym" is no task "morrow gym", "add notes" no "s",
        # "add to-do list review" no "-do list review".
        rf"(?:(?:a|an|another|one more|the)\s+)?(?:new\s+)?(?:(?:{_FILLER_TASK_WORD}|note)\b)?\s*"
        r"(?:(?:(?:called|named|titled|to|for|about|that says|saying)(?![\w-])|:|-)\s*)?"
        r"(?P<rest>.+)$",
    ),
    _rule(Intent.ADD, 0.95, rf"^(?:new|another)\s+{_FILLER_TASK_WORD}\s*:?\s*(?P<rest>.+)$"),
    _rule(
        Intent.LIST,
        0.9,
        rf"^(?:{_any('search')})\s+(?:for\s+)?(?:my\s+|the\s+)?"
        r"(?:tasks?\s+|list\s+|to-?do list\s+)?"
        r"(?:about|with|containing|mentioning|matching|named|called|titled|for)?\s*(?P<q>.+)$",
    ),
    _rule(Intent.LIST, 0.92, rf"^(?:{_any('show')})\b(?!\s+off\b)(?P<rest>.*)$"),
    _rule(
        Intent.LIST,
        1.0,
        r"^(?:remind me|tell me|let me know|i'?d like to know|i want to know|know)\s+"
        r"(?P<remind>(?:what|which|how many|if|whether|of what)\b.*)$",
    ),
    _rule(
        Intent.ADD,
        0.97,
        r"^(?:todo|to do|to-do|new task|task|reminder|new reminder|note)\s*:\s*(?P<rest>.+)$",
    ),
    _rule(Intent.UPDATE, 0.75, rf"^(?:rename|retitle|{_EDIT})\s+(?P<ask>.+)$"),
    _rule(
        Intent.ADD,
        0.97,
        r"^(?:set|create|make|add|put|leave|write)\s+(?:me\s+)?(?:a|an)\s+(?:reminder|task|todo|note)\s+"
        r"(?:to|for|about|that)\s+(?P<rest>.+)$",
    ),
    _rule(
        Intent.ADD,
        0.97,
        r"^(?:add|put|write)\s+(?:to|on|onto)\s+(?:my|the)\s+(?:[\w-]+\s+)?list\s*:?\s+(?P<rest>.+)$",
    ),
    _rule(Intent.ADD, 0.75, r"^(?P<imperative>[a-z]+)\s+(?P<rest>.+)$"),
    _rule(
        Intent.ADD,
        0.75,
        r"^(?:i have|i've got|i got|there's|there is|we have)\s+(?:a|an)\s+(?P<appointment>.+)$",
    ),
    _rule(
        Intent.LIST,
        0.95,
        r"^(?:am i|are we)\s+(?P<caughtup>(?:all\s+)?(?:done|finished|caught up|"
        r"through))\b.*$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:give|set)\s+(?P<ref>.+?)\s+(?:a\s+|the\s+)?(?P<field>due date|deadline)\s+"
        r"(?:of\s+|for\s+|to\s+)?(?P<value>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:make|move|change|set|put|switch)\s+(?P<ref>it|that|this|that one|this one|"
        rf"{_TASK_WORD}\s*#?\d+|#\d+)\s+(?:to\s+|for\s+|on\s+|at\s+)?(?P<when>.+)$",
    ),
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:call|name|title|rename)\s+(?P<ref>it|that|this|that one|this one)\s+(?:to\s+|as\s+)?"
        r"(?P<field>)(?P<value>.+)$",
    ),
    _rule(
        Intent.CLARIFY,
        0.9,
        r"^(?:set|change|give|add|update)\s+(?:a\s+|the\s+|its\s+)?(?:new\s+)?(?:priority|due date|"
        r"deadline|tags?|description)\s+(?:for|of|on|to)\s+(?P<ref>.+)$",
    ),
    _rule(
        Intent.ADD,
        1.0,
        r"^(?:i\s+(?:need|have|must|should|want|gotta|got)(?:\s+to)?|remind me to|"
        r"don't let me forget to|add a task to)$",
    ),
    _rule(
        Intent.ADD,
        1.0,
        rf"^(?:{_any('remember')}|add|create|new|make)(?:\s+(?:a|an|another|one more|new)"
        rf"(?:\s+new)?\s+(?:{_TASK_WORD}|note|one))?(?:\s+for me)?$",
    ),
    _rule(
        Intent.LIST,
        0.92,
        r"^(?:what|which|whats|how many|how much|do i have|have i|is there|are there|any|"
        r"anything|did i|when|is anything|are any|is any|has anything|got anything|number of)\b"
        r"(?P<rest>.*)$",
    ),
    _rule(
        Intent.LIST,
        0.85,
        rf"^(?:my\s+|all\s+|the\s+)*(?:(?:pending|completed|open|done|finished|incomplete|"
        rf"outstanding|overdue|urgent|important|high[\s-]priority|low[\s-]priority|"
        rf"medium[\s-]priority|#\w+)\s+)*(?:{_TASK_WORD}|list|todo list|to do list)"
        rf"(?P<rest>.*)$",
    ),
    _rule(
        Intent.ADD,
        0.8,
        r"^(?:i|i've|i have)\s+(?:(?:really\s+)?(?:need|have|must|should|gotta|got|want|ought)"
        r"\s+to|must|should|really should|gotta)(?:\s+really|\s+definitely)?\s+(?P<want>.+)$",
    ),
    _rule(Intent.ADD, 0.8, r"^(?:need to|have to|must|gotta|todo:?|to do:?)\s+(?P<want>.+)$"),
    _rule(
        Intent.ADD,
        0.8,
        r"^(?:(?:i|we)\s+(?:need|still need|gotta get|have to get|need to get|need to buy|"
        r"(?:are|am)\s+(?:out of|running low on|low on))|(?:i'm|im|we're)\s+(?:out of|"
        r"running low on|low on))\s+(?!to\b)(?P<rest>.+)$",
    ),
    _rule(
        Intent.REOPEN,
        1.0,
        r"^(?:take|remove|move)\s+(?P<ref>.+?)\s+(?:off|out of|from)\s+(?:the\s+|my\s+)?(?:done|"
        r"completed|finished)(?:\s+(?:list|tasks|ones|pile))?$",
    ),
    _rule(Intent.REOPEN, 0.95, r"^(?:put|bring|move|set)\s+(?P<ref>.+?)\s+back$"),
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:(?:set|give|add|put)\s+)?(?:a\s+|the\s+)?(?P<field>due date|deadline|priority)\s+"
        r"(?:of\s+)?(?P<value>.+?)\s+(?:for|on|to)\s+(?P<ref>.+)$",
    ),
    # "put a deadline on the report: friday": the field, the task, then the value.
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:set|give|add|put)\s+(?:a\s+|the\s+)?(?P<field>due date|deadline|priority)\s+"
        r"(?:on|for|to)\s+(?P<ref>.+?)\s*(?::|\s+of|\s+to|\s+as)\s*(?P<value>.+)$",
    ),
    # --- reminders ---
    # "remind me at 5pm to call mum", "remind me in 10 minutes to stretch": a new task and a
    # reminder at that moment (the moment is the reminder's, not the task's due date).
    _rule(
        Intent.ADD,
        1.0,
        r"^(?:remind me|set (?:me )?a reminder|reminder)\s+(?:for\s+)?(?P<remind_at>(?:(?:at|in|"
        r"on|by|tomorrow|today|tonight|this|next)\b|\d).+?)\s+(?:to|that|about)\s+(?P<rest>.+)$",
    ),
    # "remind me an hour before", "remind me 30 minutes before the dentist".
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^(?:remind me|set (?:me )?a reminder|give me a reminder|warn me)\s+(?P<offset>{_OFFSET})"
        r"\s+(?:before(?:hand)?|earlier|ahead|in advance|early)(?:\s+(?:it(?:'s| is)\s+due|it "
        r"starts|the deadline|(?P<ref>.+?)(?:\s+(?:is\s+)?due)?))?$",
    ),
    # "remind me about the dentist an hour before", "set a reminder on task 3 a day before".
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:remind me (?:about|of)|set (?:a\s+)?reminders?\s+(?:on|for)|add (?:a\s+)?"
        rf"reminders?\s+(?:to|on|for))\s+(?P<ref>.+?)\s+(?:for\s+)?(?P<offset>{_OFFSET})\s+(?:before(?:hand)?|"
        r"earlier|ahead|in advance|early)(?:\s+it(?:'s| is)\s+due)?$",
    ),
    # "remind me about it at 4pm", "set a reminder for task 3 tomorrow at 9".
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:remind me(?: about| of)?|set (?:a\s+)?reminders?\s+(?:on|for)|add (?:a\s+)?"
        r"reminders?\s+(?:to|on|for))\s+(?P<ref>it|that|this|that one|this one|"
        r"(?:task\s*)?#?\d+|the\s+.+?\s+(?:task|one))\s+(?:for\s+)?(?P<remind_at>.+)$",
    ),
    # "stop reminding me about the dentist", "no more reminders for task 3", "cancel its
    # reminders": the task's reminders, all gone.
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:(?:stop|quit) reminding me|(?:don't|do not|never) remind me|no more reminders?|"
        r"(?:cancel|remove|delete|clear|drop|turn off|switch off|disable|mute|stop)\s+"
        r"(?:the\s+|all\s+(?:the\s+)?|my\s+|its\s+|any\s+)?reminders?)"
        r"(?:\s+(?:about|for|of|on|from|to do with)\s+(?P<ref>.+?))?(?P<unremind>)"
        r"(?:\s+(?:anymore|any more|again))?$",
        clues=("remind",),
    ),
    # "remind me again in 10 minutes", "snooze it for an hour", "snooze": the latest reminder.
    _rule(
        Intent.SNOOZE,
        1.0,
        r"^(?:remind me again|remind me later|snooze(?:\s+(?:it|that|this|the reminder|the "
        r"notification|the alert))?|ask me again|again|later)(?:\s+later)?(?:\s+(?:in|for|after)\s+"
        rf"(?P<offset>{_OFFSET}))?$",
    ),
    # "dismiss it", "got it", "mark the reminder as read": the latest reminder, read.
    _rule(
        Intent.DISMISS,
        1.0,
        r"^(?:dismiss(?:\s+(?:it|that|this|the reminder|the notification|the alert|reminders?|"
        r"notifications?))?|(?:mark|set)\s+(?:it|that|the reminder|the notification)\s+(?:as\s+)?"
        r"read|got it|ok got it|okay got it|seen it|i saw it|noted)$",
    ),
    # "task 3 done", "milk done": a reference and the word for done, nothing between.
    _rule(
        Intent.COMPLETE,
        0.9,
        r"^(?P<ref>(?!(?:all|every|everything|i|i'm|im|we|we're|you|you're|are|is|am|was|were|"
        rf"it's|that's)\b)[^?]+?)\s+(?:now\s+|all\s+)?{_DONE}$",
        clues=_DONE_CLUES,
    ),
    # "stick cancel netflix on the list", "pop eggs onto my shopping list": placed on a list.
    _rule(
        Intent.ADD,
        0.97,
        r"^(?:stick|pop|chuck|throw|slap|put|add|write|jot|jot down|put down|note down|get|"
        r"whack)\s+(?P<rest>.+?)\s+(?:on|onto|to|in|into)\s+(?:my|the)\s+(?:[\w-]+\s+)?"
        r"(?:list|to-?do list|to do list|todos?|to-?dos)$",
        clues=("list", "todo", "to-do", "to do"),
    ),
    # "take walk the dog off my list": off the list altogether.
    _rule(
        Intent.DELETE,
        0.95,
        r"^(?:take|get)\s+(?P<ref>.+?)\s+off\s+(?:of\s+)?(?:my|the)\s+(?:[\w-]+\s+)?"
        r"(?:list|to-?do list|to do list|todos?|to-?dos|tasks)$",
        clues=(" off ",),
    ),
    # "push the report back a day", "postpone the dentist by 2 days", "move the report a week
    # later", "bring the meeting forward an hour": a move by a span from the current due date.
    _rule(
        Intent.UPDATE,
        1.0,
        rf"^(?P<shifting>{_any('move')}|bring|put)\s+(?P<ref>.+?)(?:\s+(?P<way>back|forward|up|"
        r"out|later|earlier|sooner))?\s+(?:by\s+|for\s+)?"
        rf"(?P<shift>{_OFFSET})(?:\s+(?P<way2>later|earlier|sooner|back|forward|up|out))?$",
    ),
    # "put the gym off until saturday", "push the call back to friday": a separable move.
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:put|push|move|bump|shift|set|bring)\s+(?P<ref>.+?)\s+(?:off|back|forward|up|out)"
        r"\s+(?:to|until|till|for|by|on)\s+(?P<when>.+)$",
    ),
    # "the meeting has been moved to friday", "my appointment got pushed back to 3pm".
    _rule(
        Intent.UPDATE,
        0.95,
        r"^(?P<ref>.+?)\s+(?:has been|have been|was|were|got|is|are|is being|'s been|'s)\s+"
        r"(?:moved|pushed|rescheduled|postponed|put off|shifted|changed|delayed|bumped|"
        r"brought forward)\s+(?:back\s+|forward\s+)?(?:to|until|till|for)\s+(?P<when>.+)$",
        clues=(
            "moved",
            "pushed",
            "reschedul",
            "postponed",
            "put off",
            "shifted",
            "changed",
            "delayed",
            "bumped",
            "brought",
        ),
    ),
    # "the dentist moved my appointment to thursday at 11": someone else moved it.
    _rule(
        Intent.UPDATE,
        0.95,
        r"^(?:(?:the|my|our)\s+)?[\w']+\s+(?:moved|pushed|rescheduled|postponed|shifted|changed|"
        r"delayed|bumped)\s+(?:(?:my|our|the)\s+)?(?P<ref>.+?)\s+(?:back\s+|forward\s+)?"
        r"(?:to|until|till)\s+(?P<when>.+)$",
        clues=(
            "moved",
            "pushed",
            "reschedul",
            "postponed",
            "shifted",
            "changed",
            "delayed",
            "bumped",
        ),
    ),
    # "task 2 should be called Walk the dog": a new title said as a fact.
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?P<ref>.+?)\s+(?:should be|is now|needs to be|must be)\s+(?:called|named|titled|"
        r"renamed(?:\s+to)?)\s+(?P<field>)(?P<value>.+)$",
        clues=("called", "named", "titled", "renamed"),
    ),
    # "the report needs to be done by friday": its due date said as a need.
    _rule(
        Intent.UPDATE,
        0.95,
        r"^(?P<ref>.+?)\s+(?:needs to be|has to be|must be|should be|is to be)\s+(?:done|"
        r"finished|completed|submitted|sent|ready|handed in)\s+(?:by|before|on|for)\s+"
        r"(?P<when>.+)$",
        clues=(" be ",),
    ),
    # "when is the dentist", "when's the report due", "did I pay the bill?": a question about
    # one task, answered from the task found (its due date, or whether it is done).
    _rule(
        Intent.LIST,
        0.95,
        r"^(?:when(?:'s|\s+is|\s+are)\s+(?P<asked_due>.+?)(?:\s+due)?|did i\s+(?:already\s+)?"
        r"(?P<asked_done>(?!(?:finish|complete|do|get|tick|check)\b)[a-z]+\s+.+?)(?:\s+yet)?)$",
    ),
    # a question about one task, answered by looking it up.
    _rule(
        Intent.LIST,
        0.95,
        r"^(?:(?:is|are|was|has|have)\s+(?P<about>.+?)\s+(?:been\s+|already\s+)?(?:done|"
        r"finished|completed|complete|ticked off|checked off)(?:\s+yet)?|did i (?:already\s+)?"
        r"(?:finish|complete|do|tick off|check off)\s+(?P<about2>.+?)(?:\s+yet)?|what'?s\s+"
        r"(?:the\s+)?status\s+(?:of|on|for)\s+(?P<about3>.+))$",
    ),
    # "change the title to Buy bread", "set its priority to high": the task in context.
    _rule(
        Intent.UPDATE,
        0.95,
        rf"^{_EDIT}\s+(?:the|its)\s+{_FIELD}\s+(?:to|as|into|:)\s*(?P<value>.+)$(?P<pron>)",
    ),
    # "I need task 3 back", "I want the gym task back": reopened.
    _rule(Intent.REOPEN, 1.0, r"^(?:i\s+)?(?:need|want|'d like|would like)\s+(?P<ref>.+?)\s+back$"),
    # "retitle task 2 "Buy bread"": a new title in quotes, no "to".
    _rule(
        Intent.UPDATE,
        1.0,
        r"^(?:rename|retitle|re-title|re-name)\s+(?P<ref>.+?)(?<!\bto)(?<!\bas)(?<!\binto)\s*:?\s+"
        r"(?P<field>)"
        rf"(?P<value>[{OPEN_QUOTES}].+)$",
    ),
    # "set the laundry for tomorrow evening", "schedule the call for 3pm".
    _rule(
        Intent.UPDATE,
        0.95,
        r"^set\s+(?P<ref>(?!(?:a|an|another|some|up|me)\b).+?)\s+(?:for|on)\s+(?P<when>.+)$",
    ),
    # "the meeting is at 4pm now", "the dentist is on friday instead".
    _rule(
        Intent.UPDATE,
        0.95,
        r"^(?P<ref>.+?)(?:\s+is|'s)\s+(?:now\s+)?(?P<when>(?:at|on|for)\s+.+?)(?:\s+(?:now|instead))?$",
        clues=(" is ", "'s "),
    ),
    # "change the priority", "set a due date": the field without the task or the value.
    _rule(
        Intent.CLARIFY,
        1.0,
        rf"^(?:{_any('edit')}|give|add)\s+(?:the|its|a|my|new)\s+(?:new\s+)?(?:priority|due date|"
        r"deadline|title|name|description|tags?|notes?)(?P<ref>)$",
    ),
)

# A reading must score at least this to be acted on; another intent's reading within
# ``MARGIN`` of the best one makes the message ambiguous.
THRESHOLD = 0.7
MARGIN = 0.03

_FRAME = re.compile(
    rf"^(?:{_any('frame')}|(?:i was wondering|i wonder|i'm wondering|do you think|"
    r"(?:is there )?any chance|i was hoping|i'm hoping)(?:\s+(?:if|whether|that))?(?:\s+you)?"
    r"(?:\s+(?:could|can|would|might|will))?(?:\s+(?:please|possibly|maybe))?)(?:\s+|,\s*)",
    re.IGNORECASE,
)
_POLITE_PREFIX = re.compile(
    r"^(?:(?:ok(?:ay)?|so|and|also|now|hey there|hey|hi there|hi|hello|oh|alright|then|great|"
    r"well|right|oops|wait|ugh|hmm+|actually|ah|sorry|good news|by the way|btw)[\s,!.]+|"
    r"i want to\s+(?=(?:see|view|add|create|delete|remove|mark|complete|change|update|list|"
    r"know)\b)|(?:just|quickly)\s+)",
    re.IGNORECASE,
)
_FILLER_WORDS = tuple(w for w in VOCABULARY["filler"] if "," not in w)
# Words a request may end with that change nothing it asks: polite ones ("..., please",
# "thanks", "for me now") and "instead", "then" ("make it 4pm instead", "move it to monday
# then"); "asap" only as the very last word. Read from the right by ``_strip_polite_tail``,
# never by a regular expression: a pattern anchored at the end with a repeated separator
# class backtracks quadratically over a long run of commas or spaces.
_POLITE_TAIL_WORDS = (
    "please",
    "pls",
    "plz",
    "thanks",
    "thank you",
    "for me",
    "now",
    "instead",
    "then",
)
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


def drop_fillers(text: str, *, keep_thanks: bool = False) -> str:
    """``text`` without the vocabulary's fillers ("um", "please", "for me", "right now"),
    wherever they stand, except inside double quotes (a quoted title is kept as written). A
    list's comma after a dropped filler ("milk please, eggs") stays. Linear in the length.
    ``keep_thanks`` keeps "thanks", "thank you" and "cheers" (for reading small talk)."""
    first, pattern = (_NOISE_FIRST_WORDS, _NOISE) if keep_thanks else (_FILLER_FIRST_WORDS, _FILLER)
    words = set(fold_case(text).replace(",", " ").replace(".", " ").replace("!", " ").split())
    if words.isdisjoint(first):
        return text  # the usual case, decided without a pattern
    parts = _DOUBLE_QUOTED.split(text)
    for index in range(0, len(parts), 2):  # the even parts are outside quotes
        parts[index] = pattern.sub(_comma_of, parts[index])
    squeezed = " ".join("".join(parts).split()).replace(" ,", ",")
    return _REPEATED_COMMA.sub(",", squeezed)


def _comma_of(match: re.Match[str]) -> str:
    return "," if match.group(0).endswith(",") else " "


_FILLER_FIRST_WORDS = frozenset(w.split()[0] for w in _FILLER_WORDS)
_FILLER = re.compile(
    r"(?<![\w'#-])(?:"
    + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(_FILLER_WORDS, key=len)[::-1])
    + r")(?![\w'-])[.!]?,?",
    re.IGNORECASE,
)
_NOISE_WORDS = tuple(w for w in _FILLER_WORDS if w not in {"thanks", "thank you", "cheers"})
_NOISE_FIRST_WORDS = frozenset(w.split()[0] for w in _NOISE_WORDS)
_NOISE = re.compile(
    r"(?<![\w'#-])(?:"
    + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(_NOISE_WORDS, key=len)[::-1])
    + r")(?![\w'-])[.!]?,?",
    re.IGNORECASE,
)
_DOUBLE_QUOTED = re.compile('("[^"]*"|\u201c[^\u201d]*\u201d)')
_REPEATED_COMMA = re.compile(r",(?: ?,)+")


# "would you mind adding ...": the gerund after a frame is the verb.
_GERUNDS = {
    "adding": "add",
    "creating": "create",
    "putting": "put",
    "making": "make",
    "deleting": "delete",
    "removing": "remove",
    "erasing": "erase",
    "cancelling": "cancel",
    "clearing": "clear",
    "marking": "mark",
    "completing": "complete",
    "finishing": "finish",
    "ticking": "tick",
    "checking": "check",
    "crossing": "cross",
    "changing": "change",
    "updating": "update",
    "renaming": "rename",
    "editing": "edit",
    "setting": "set",
    "moving": "move",
    "pushing": "push",
    "postponing": "postpone",
    "rescheduling": "reschedule",
    "showing": "show",
    "listing": "list",
    "reopening": "reopen",
    "tagging": "tag",
    "scheduling": "schedule",
    "undoing": "undo",
    "getting": "get",
    "reminding": "remind",
    "counting": "count",
    "giving": "give",
    "pushing back": "push back",
    "telling": "tell",
}
_GERUND = re.compile(r"^(?P<word>[a-z]+ing)\b", re.IGNORECASE)


# Spoken and texting forms, read as the words they stand for.
_SLANG = {
    "lemme": "let me",
    "gimme": "give me",
    "wanna": "want to",
    "gotta": "got to",
    "gonna": "going to",
    "ur": "your",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "tmrw": "tomorrow",
    "tmrrw": "tomorrow",
    "tomoz": "tomorrow",
    "2moro": "tomorrow",
    "2morrow": "tomorrow",
    "tonite": "tonight",
    "2nite": "tonight",
    "2day": "today",
    "w/": "with",
    "w/o": "without",
    "tsk": "task",
    "u": "you",
    "thanku": "thank you",
    "tsks": "tasks",
}
_SLANG_WORD = re.compile(
    r"(?<![\w'#-])(?:" + "|".join(sorted(_SLANG, key=len, reverse=True)) + r")(?![\w'-])",
    re.IGNORECASE,
)
_SLANG_FIRST = frozenset(_SLANG)
# A typographic apostrophe inside a word ("don\u2019t", typed with a curly one) is the plain one.
_CURLY_APOSTROPHE = re.compile("(?<=[A-Za-z])\u2019(?=[A-Za-z])")
# Emoticons and emoji carry no request: ":)", ";-)", ":D", "<3", "👍".
_EMOTICON = re.compile(
    r"(?:(?<=\s)|^)(?:[:;=8]-?[()\[\]DPpOo/\\|*]+|<3+|\^_?\^)(?=\s|$)|"
    "[\U0001f300-\U0001faff\u2600-\u27bf\ufe0f\u200d]+"
)


def normalise(text: str) -> str:
    """``text`` with spoken and texting forms spelled out ("lemme" -> "let me", "tmrw" ->
    "tomorrow"), curly apostrophes inside words made plain and emoticons taken out, each a
    single linear pass; quoted titles are kept as written."""
    text = _CURLY_APOSTROPHE.sub("'", text)
    if any(ord(c) > 0x2000 or c in ":;=<^8" for c in text):
        text = _EMOTICON.sub(" ", text)
    words = set(fold_case(text).replace(",", " ").split())
    if words.isdisjoint(_SLANG_FIRST):
        return text
    parts = _DOUBLE_QUOTED.split(text)
    for index in range(0, len(parts), 2):
        parts[index] = _SLANG_WORD.sub(lambda m: _SLANG[m.group(0).lower()], parts[index])
    return "".join(parts)


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- typing slips -----------------------------------------------------------------------------
# A command word typed with one slip ("craete", "shwo", "delte", "addd") is read as the word,
# but only when the message had no confident reading as typed: a real word that happens to be
# one slip away ("how", "dad") keeps its meaning.
_SLIP_TARGETS = (
    "add",
    "create",
    "delete",
    "remove",
    "complete",
    "finish",
    "show",
    "list",
    "display",
    "mark",
    "change",
    "update",
    "rename",
    "edit",
    "reschedule",
    "postpone",
    "reopen",
    "search",
    "task",
    "tasks",
    "todo",
    "todos",
)
_NOT_SLIPS = _word_set(
    """
    how dad sow ark lose lost lit sit sat seat adds ads aid and mask marks mar marked chance
    hang range edict tusk desk ask tsar rest lest last list slit snow show
    """
)


def _one_slip(word: str, target: str) -> bool:
    """Whether ``word`` is ``target`` with one typing slip: two neighbouring letters swapped,
    one letter missing or one too many (and, for long words, one letter wrong)."""
    if word == target:
        return False
    if len(word) == len(target):
        differ = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
        if len(differ) == 2 and differ[1] == differ[0] + 1:
            i = differ[0]
            return word[i] == target[i + 1] and word[i + 1] == target[i]
        return len(differ) == 1 and len(target) >= 6
    if abs(len(word) - len(target)) != 1:
        return False
    longer, shorter = (word, target) if len(word) > len(target) else (target, word)
    return any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer)))


def _slip_of(word: str) -> str | None:
    lowered = word.lower()
    if len(lowered) < 3 or lowered in _NOT_SLIPS or not lowered.isalpha():
        return None
    for target in _SLIP_TARGETS:
        if abs(len(lowered) - len(target)) <= 1 and _one_slip(lowered, target):
            return target
    return None


def correct_slips(sentence: str) -> str:
    """``sentence`` with a mistyped command word put right: its first word, and a word just
    before a task number ("mark tsk 3")."""
    words = sentence.split(" ")
    changed = False
    for index, word in enumerate(words):
        before_number = index + 1 < len(words) and words[index + 1][:1] in "#0123456789"
        if index != 0 and not before_number:
            continue
        fixed = _slip_of(word)
        if fixed is not None:
            words[index] = fixed
            changed = True
    return " ".join(words) if changed else sentence


def clean(text: str) -> str:
    """Trim politeness, fillers and punctuation that do not change what is asked."""
    sentence = " ".join(normalise(text).split())
    without = drop_fillers(sentence)
    if without.strip(_SEPARATORS + _END_PUNCTUATION):
        sentence = without
    for _ in range(5):
        trimmed = _strip_polite_tail(sentence).strip(_SEPARATORS)
        without_prefix = _POLITE_PREFIX.sub("", trimmed, count=1).strip(_SEPARATORS)
        if without_prefix:  # "thanks" alone is the whole message, not a prefix
            trimmed = without_prefix
        framed = _FRAME.sub("", trimmed, count=1).strip(_SEPARATORS)
        if framed:
            trimmed = framed
        gerund = _GERUND.match(trimmed)
        if gerund is not None and gerund["word"].lower() in _GERUNDS:
            trimmed = _GERUNDS[gerund["word"].lower()] + trimmed[gerund.end() :]
        if trimmed == sentence:
            break
        sentence = trimmed
    return sentence


_TASK_TALK = re.compile(
    rf"\b(?:{_TASK_WORD}|list|{_any('add', 'complete', 'delete', 'reopen', 'move')}|"
    r"due|priority|urgent|done|finished|pending)\b",  # read in ``fold_case`` text
)


def understand(text: str, *, now: datetime, tz: ZoneInfo) -> Command:
    """What ``text`` asks for: the best-scoring reading. Never raises: no reading at all is
    ``Intent.UNKNOWN``, an ambiguous or weak one ``Intent.CLARIFY``."""
    light = " ".join(normalise(text).split()).rstrip(_END_PUNCTUATION)
    quiet = drop_fillers(light, keep_thanks=True).strip(_SEPARATORS + _END_PUNCTUATION)
    sentence = clean(text)
    for intent, _, pattern in RULES:
        if intent in _SMALL_TALK and (
            pattern.match(light) or pattern.match(quiet) or pattern.match(sentence)
        ):
            return Command(intent)
    if not sentence:
        return Command(Intent.UNKNOWN)
    several = _requests(sentence, now=now, tz=tz)
    if several is not None and all(step.intent in STEP_INTENTS for step in several.steps):
        return several
    command = _reading(sentence, now=now, tz=tz)
    if several is not None and _holds_a_request(command, several.steps[1:]):
        # A new task's title, or the words of the task to look for, would hold another
        # request ("add a task and delete task 3"): asked to send them one at a time, never a
        # task named after a command.
        return several
    return command


def _holds_a_request(command: Command, later: Sequence[Command]) -> bool:
    """Whether ``command``, the message read as one request, takes a later request's words
    in: a new task's title ("add a task and delete task 3" adding "A task and delete task
    3"), or the title words of the task it is about ("delete task 3 and remind me at 5pm"
    looking for "3 and remind me at 5pm"). A request after a clause that only tells something
    ("my mom called, add call her back") is the reading, as before."""
    titles = [item.title for item in (command, *command.items)]
    titles.append(command.ref.title if command.ref is not None else None)
    words = " ".join(fold_case(title) for title in titles if title)
    # Its first words: a date or a tag may have been taken out of a title further on.
    return any(" ".join(fold_case(step.said).split()[:3]) in words for step in later if step.said)


def _reading(sentence: str, *, now: datetime, tz: ZoneInfo) -> Command:
    """The best reading of a cleaned sentence as one request."""
    readings = interpretations(sentence, now=now, tz=tz)
    if (not readings or readings[0].score < THRESHOLD) and len(sentence) <= _REF_MAX:
        # A mistyped command is a short message; a long one is not read twice.
        corrected = correct_slips(sentence)
        if corrected != sentence:
            again = interpretations(clean(corrected), now=now, tz=tz)
            if again and again[0].score >= THRESHOLD:
                sentence, readings = clean(corrected), again
    if (not readings or readings[0].score < THRESHOLD) and _CLAUSE_BREAK.search(sentence):
        joined = _from_clauses(sentence, now=now, tz=tz)
        if joined is not None:
            return joined
    if not readings:
        if _TASK_TALK.search(fold_case(sentence)):
            return Command(Intent.CLARIFY, title=sentence, score=0.0)
        return Command(Intent.UNKNOWN)
    best = readings[0]
    others = [r for r in readings[1:] if r.intent is not best.intent]
    if others and best.score - others[0].score < MARGIN and best.intent is not Intent.ANSWER:
        options = (best.intent, others[0].intent)
        return Command(Intent.CLARIFY, title=sentence, options=options, score=best.score)
    if best.score < THRESHOLD:
        return Command(Intent.CLARIFY, title=sentence, options=(best.intent,), score=best.score)
    return best


_CLAUSE_BREAK = re.compile(r"[,;.!?] ")
_CLAUSE_PRONOUN_TITLES = frozenset({"that", "it", "this", "that one", "this one", "that task"})
_CLAUSE_TASK_ID = re.compile(r"\btask\s*#?(\d+)\b|#(\d+)\b", re.IGNORECASE)
_CLAUSE_TASK_TITLE = re.compile(
    r"\bthe\s+(?P<title>[\w' -]+?)\s+(?:task|one|thing|reminder|item)\b", re.IGNORECASE
)
_CLAUSE_WISH = re.compile(
    r"^(?:(?:ugh|oh|hmm|so|well)\s+)?i\s+(?:keep forgetting to|always forget to|forgot to|"
    r"(?:really\s+)?(?:should|need to|have to|must|ought to|gotta|want to)(?:\s+really)?)\s+"
    r"(?P<title>.+)$",
    re.IGNORECASE,
)


def _from_clauses(sentence: str, *, now: datetime, tz: ZoneInfo) -> Command | None:
    """A message of several clauses ("the party got cancelled, delete the party task", "I
    should clean the fridge, put it on my list"): the clause that asks something, with "it"
    read as the task another clause names."""
    if len(sentence) > 2 * _REF_MAX:
        return None  # clauses are a short message's; a long one is read as a whole
    clauses = [c.strip() for c in _CLAUSE_BREAK.split(sentence) if c.strip()]
    if len(clauses) < 2 or len(clauses) > 6:
        return None
    for index in range(len(clauses) - 1, -1, -1):
        readings = interpretations(clean(clauses[index]), now=now, tz=tz)
        if not readings or readings[0].score < THRESHOLD:
            continue
        command = readings[0]
        others = clauses[:index] + clauses[index + 1 :]
        title = (command.title or "").lower()
        if command.intent is Intent.ADD and title in _CLAUSE_PRONOUN_TITLES:
            for other in others:
                wish = _CLAUSE_WISH.match(clean(other))
                if wish is not None:
                    return replace(_add(wish["title"], now=now, tz=tz), score=command.score)
            continue
        if command.ref is not None and command.ref.pronoun:
            # "it" is the task another clause names, else the one the conversation is about.
            command = replace(command, ref=_named_in(others) or command.ref)
        if command.intent in {Intent.LIST, Intent.ANSWER}:
            continue
        return replace(command, score=round(command.score * 0.95, 3))
    return None


# What one request of several may be: each runs as it would alone, in the order said.
STEP_INTENTS = frozenset(
    (Intent.ADD, Intent.LIST, Intent.COMPLETE, Intent.REOPEN, Intent.DELETE, Intent.UPDATE)
)
# Where a message may go on with another request: after a clause's punctuation, or at "and",
# "then", "also", "plus" ("add milk and delete task 3", "add call mom. also delete task 2").
_REQUEST_BREAK = re.compile(r"[,;.!?]\s+|\s+(?=(?:and|&|then|also|plus)\s)", re.IGNORECASE)
_CONNECTORS = re.compile(
    r"(?:(?:and|&|then|also|plus|after that|afterwards|next)\b[\s,]*)+", re.IGNORECASE
)
_CONNECTOR_WORDS = frozenset(("and", "&", "then", "also", "plus"))
# How a request to the assistant starts (after its polite frame: "can you delete task 3").
# A clause after "and" that starts otherwise ("chips", "email Sam") is the same request's.
_REQUEST_START = re.compile(
    r"(?:add|create|insert|put|new|jot down|write down|note down|remind me|set (?:a|an|up a) "
    r"reminder|delete|remove|erase|cancel|drop|trash|bin|scrap|ditch|get rid of|forget|"
    r"scratch|mark|tick|check off|cross off|complete|finish|close|reopen|unmark|uncheck|"
    r"untick|show|list|display|view|give me|tell me|pull up|what|what's|whats|which|how many|"
    r"when|when's|change|update|rename|edit|modify|set|move|reschedule|postpone|push|delay|"
    r"defer|shift|bump|bring|make|raise|lower|tag|untag|label)\b",
    re.IGNORECASE,
)
# A request to add, as a later clause must say it: "add milk and buy bread" is one list of
# chores (``_add_many``), "add milk and add bread" two requests.
# Not "put": "and put them in the fridge" is the same chore's.
_ADD_START = re.compile(
    r"(?:add|create|insert|new|jot down|write down|note down|remind me|"
    r"set (?:a|an|up a) reminder)\b",
    re.IGNORECASE,
)
_REQUESTS_MAX = 5
# How much of a clause's start shows whether it is a request (its frame, then its verb).
_REQUEST_LOOK = 80
_FRAME_FIRST_WORDS = frozenset(
    words.split()[0] for words in VOCABULARY["frame"] + VOCABULARY["filler"]
) | frozenset(_SLANG)


def _requests(sentence: str, *, now: datetime, tz: ZoneInfo) -> Command | None:
    """Several requests in one message ("add milk and delete task 3", "add pay rent, then list
    everything", "delete task 3 and add buy milk"): ``Intent.SEVERAL`` with each as a step,
    in the order said; None when the message is one request.

    A later clause is a request of its own only when it starts as one and reads as a
    confident command by itself that no title goes on with (see ``_alone``), so "add fish and
    chips", "add call mom and email Sam" (two chores, ``_add_many``) and "add pick up kids
    then groceries" stay what they were. A reminder said after a new task is that task's
    ("add laundry and remind me at 5pm"). When a later clause is a request and another is not
    one that runs alone, the steps hold it as ``Intent.UNKNOWN``: the agent asks for them one
    at a time (``understand`` keeps them only where the message would add a task)."""
    if len(sentence) > 2 * _REF_MAX or not _REQUEST_BREAK.search(sentence):
        return None
    quoted = [found.span() for found in _QUOTED_TITLE.finditer(sentence)]
    spans: list[tuple[int, int]] = []  # each clause's start and end in ``sentence``
    start = 0
    for found in _REQUEST_BREAK.finditer(sentence):
        if found.start() < start or any(a < found.start() < b for a, b in quoted):
            continue
        lead = _CONNECTORS.match(sentence, found.end())
        begins = lead.end() if lead is not None else found.end()
        if not _starts_a_request(sentence[begins : begins + _REQUEST_LOOK]):
            continue
        if len(spans) >= _REQUESTS_MAX:
            return None  # more than a message's worth of requests: read as one
        spans.append((start, found.start()))
        start = begins
    if not spans:
        return None
    spans.append((start, len(sentence)))
    # A later clause that does not run alone goes on the clause before it ("add check the
    # tyres and change the oil": two chores, not a change of a task called oil), which is then
    # read again with it.
    kept: list[tuple[int, int, Command | None]] = []
    for begin, end in spans:
        alone = _alone(_clause(sentence, begin, end), first=not kept, now=now, tz=tz)
        if alone is None and kept:
            first = len(kept) == 1
            begin = kept.pop()[0]
            alone = _alone(_clause(sentence, begin, end), first=first, now=now, tz=tz)
        kept.append((begin, end, alone))
    if len(kept) < 2:
        return None
    steps: list[Command] = []
    starts: list[int] = []  # where each step's words start
    for begin, end, alone in kept:
        step = Command(Intent.UNKNOWN) if alone is None else alone
        folded = _reminder_of(steps[-1], step) if steps else None
        if folded is not None:  # "add laundry and remind me at 5pm": one request
            steps[-1] = replace(folded, said=_clause(sentence, starts[-1], end))
            continue
        if step.intent is Intent.ADD and not step.title:
            step = Command(Intent.UNKNOWN)  # a reminder with no new task before it to be on
        if steps and steps[-1].intent is Intent.ADD and _deletes_unnamed(step):
            # "add read and delete old emails" may be one new task's title, and "it" in "add
            # milk and complete the report and delete it" the new task "Milk and complete the
            # report": nothing is deleted unasked; the requests are asked for one at a time.
            step = Command(Intent.UNKNOWN)
        if _said_again(step, steps):
            return None  # "actually I just did it, mark it as done": one request, said twice
        steps.append(replace(step, said=_clause(sentence, begin, end)))
        starts.append(begin)
    if len(steps) == 1:
        return replace(steps[0], said=None)
    score = min(step.score for step in steps)
    return Command(Intent.SEVERAL, steps=tuple(steps), score=score)


def _deletes_unnamed(command: Command) -> bool:
    """Whether ``command`` deletes a task it finds by title words alone or calls "it"."""
    ref = command.ref
    if command.intent is not Intent.DELETE or ref is None:
        return False
    return (ref.pronoun or ref.title is not None) and not (
        ref.ids or ref.ordinal is not None or ref.bulk
    )


def _clause(sentence: str, begin: int, end: int) -> str:
    """A clause's words, without the punctuation and the "and" that tie it to the next one."""
    words = sentence[begin:end].strip(_SEPARATORS + _END_PUNCTUATION).split()
    while len(words) > 1 and words[-1].lower() in _CONNECTOR_WORDS:
        words.pop()
    return " ".join(words).strip(_SEPARATORS + _END_PUNCTUATION)


def _starts_a_request(start: str) -> bool:
    """Whether words starting so start a request, after any frame ("can you delete ..."). Only
    their start is read, and cleaned only when its first word may begin a frame or a filler:
    the scan of a message stays linear, and cheap."""
    if _REQUEST_START.match(start):
        return True
    first = start.split(maxsplit=1)[0].lower() if start.strip() else ""
    return first in _FRAME_FIRST_WORDS and _REQUEST_START.match(clean(start)) is not None


def _alone(clause: str, *, first: bool, now: datetime, tz: ZoneInfo) -> Command | None:
    """The request ``clause`` makes on its own, when it is one: a confident reading of one of
    ``STEP_INTENTS``, with no close second, that is not a chore's words. A later clause must
    start as a request (``_REQUEST_START``; a new task after an add verb). A reminder with no
    task of its own ("remind me at 5pm") is kept for the task said before it."""
    words = clean(clause)
    if not words or len(words) > _REF_MAX:
        return None
    readings = interpretations(words, now=now, tz=tz)
    if not readings or readings[0].score < THRESHOLD:
        return None
    best = readings[0]
    if any(r.intent is not best.intent and best.score - r.score < MARGIN for r in readings[1:]):
        return None
    if best.intent not in STEP_INTENTS:
        return None
    verb = words.split()[0].lower()
    if best.intent is Intent.ADD:
        if not first and not _ADD_START.match(words):
            return None
        if not best.title:
            # "remind me at 5pm": a reminder for the task before it, or no request at all.
            return best if _REMIND_WORD.search(fold_case(words)) and not first else None
        return None if best.title.lower() in _CLAUSE_PRONOUN_TITLES else best
    if not first and not _REQUEST_START.match(words):
        return None
    if best.intent is Intent.LIST:
        # "show my tasks", "list everything", "when is the dentist": about the user's tasks,
        # not "list the hotels" or "show the kids the schedule" (chores).
        said = fold_case(words).partition(" ")[2]
        return best if best.ref is not None or not said or _MY_TASKS.search(said) else None
    ref = best.ref
    if ref is None:
        return None
    if ref.ids or ref.pronoun or ref.ordinal is not None or ref.bulk:
        return best
    # "cancel my card", "change the oil": maybe a chore, and no change said.
    no_change = best.intent is Intent.UPDATE and not _changes(best)
    if best.chore is not None or best.doubt is not None or no_change:
        return None
    # In a later clause, title words after a verb that starts chores too ("add wash the car
    # and finish the report", "... and complete the tax return") may be another task to add.
    return None if not first and verb in _CHORE_VERBS else best


# Words that ask about the user's list (read in ``fold_case`` text, after the verb).
_MY_TASKS = re.compile(
    rf"\b(?:{_TASK_WORD}|list|everything|all|pending|due|done|completed|finished|overdue|left|"
    r"remaining|outstanding|open|to ?do|today|tomorrow|this week|tagged)\b|#\w"
)


def _changes(command: Command) -> bool:
    """Whether an edit says what changes ("rename the report" and "change the oil" do not)."""
    return (
        command.title is not None
        or command.description is not None
        or command.priority is not None
        or command.due_at is not None
        or command.shift_minutes is not None
        or command.reminders is not None
        or bool(command.tags or command.added_tags or command.removed_tags or command.clear)
    )


def _said_again(step: Command, before: Sequence[Command]) -> bool:
    """Whether ``step``, about "it", repeats a request said before it: the same change of
    "it" ("I just did it, mark it as done"), or a completion or deletion of the task named
    ("delete task 3, delete it"). Two edits of one task are two ("move the dentist to friday
    and make it high priority")."""
    if step.ref is None or not step.ref.pronoun:
        return False
    return any(
        earlier.intent is step.intent
        and (step.intent is not Intent.UPDATE or (earlier.ref is not None and earlier.ref.pronoun))
        for earlier in before
    )


def _reminder_of(task: Command, step: Command) -> Command | None:
    """A new task with the reminder ``step`` asks for, when ``step`` only sets a reminder on
    it: "add laundry and remind me at 5pm" (at 17:00), "... and remind me an hour before" (a
    task due then). A plain "remind me" keeps the task as it is; None: ``step`` is no such
    reminder, or the task cannot hold it."""
    if task.intent is not Intent.ADD or task.items or not task.title:
        return None
    if step.intent is Intent.ADD and not step.title:
        if step.due_at is None:
            return task  # "add milk and remind me": a plain task, as "remind me to buy milk"
        return replace(task, reminders=(Reminder(at=step.due_at),))
    if step.intent is not Intent.UPDATE or step.ref is None or not step.ref.pronoun:
        return None
    if step.reminders is None or step != Command(
        Intent.UPDATE, ref=step.ref, reminders=step.reminders, score=step.score
    ):
        return None  # the update does more than remind
    if any(r.before_due_minutes is not None for r in step.reminders) and task.due_at is None:
        return None  # a reminder before a due date the task has not: said when it runs
    return replace(task, reminders=step.reminders)


def _named_in(clauses: Sequence[str]) -> TaskRef | None:
    for clause in clauses:
        found = _CLAUSE_TASK_ID.search(clause)
        if found is not None:
            return TaskRef(ids=(int(found.group(1) or found.group(2)),))
        named = _CLAUSE_TASK_TITLE.search(clause)
        if named is not None:
            return TaskRef(title=named["title"].strip())
        thing = _CLAUSE_THING.search(clause)
        if thing is not None:
            return read_ref(thing["title"])
    return None


# "I don't want to do the attic anymore", "the report isn't urgent": the thing talked about.
_CLAUSE_THING = re.compile(
    r"(?:^|\b(?:do|need|want|about|for|with)\s+)the\s+(?P<title>[\w'-]+(?:\s+[\w'-]+)?)"
    r"(?=\s+(?:anymore|any more|is|isn't|is not|was|has|got|needs)\b|$)",
    re.IGNORECASE,
)


def interpretations(sentence: str, *, now: datetime, tz: ZoneInfo) -> list[Command]:
    """Every reading of a cleaned sentence whose pieces make sense, best first (one per
    intent, the best of its rules)."""
    best: dict[Intent, Command] = {}
    top = 0.0
    folded = fold_case(sentence)
    for intent, score, pattern in _BY_SCORE:
        if top - score >= MARGIN:
            break  # no reading left can win, nor come close enough to be a second
        known = best.get(intent)
        if known is not None and known.score >= score:
            continue
        clues = _CLUES.get(pattern)
        if clues is not None and not any(clue in folded for clue in clues):
            continue  # a substring check spares a pattern that cannot match
        match = pattern.match(sentence)
        if match is None:
            continue
        groups = {k: v for k, v in match.groupdict().items() if v is not None}
        command = _build(intent, groups, sentence, now=now, tz=tz)
        if command is None:
            continue
        scored = replace(command, score=round(score * _confidence(command), 3))
        if known is None or scored.score > known.score:
            best[command.intent] = scored
            top = max(top, scored.score)
    return sorted(best.values(), key=lambda c: -c.score)


def _confidence(command: Command) -> float:
    """How much a reading's own pieces support it (1.0: fully)."""
    if command.intent is Intent.ADD and command.title:
        # A title that itself reads as another command ("add delete task 3") is weaker.
        return 0.97 if _starts_with_command(command.title) else 1.0
    ref = command.ref
    if ref is not None and ref.title is not None:
        # Title words of a reference: the longer, the less likely a whole sentence was meant.
        return 1.0 if len(ref.title.split()) <= 6 else 0.9
    return 1.0


_SMALL_TALK = frozenset({Intent.GREETING, Intent.THANKS, Intent.HELP})
# The readings other than small talk, best score first (a stable sort: the table's order
# among equal scores).
# Words without which a reading's pattern cannot match: a substring search is a fraction of
# the pattern's cost over a long message (the patterns with a lazy part scan it).
_FIELD_CLUES = ("title", "name", "descr", "detail", "note", "priorit", "due", "deadline", "tag")
_NOT_CLUES = ("not", "n't", "never")
_NOT_DONE_CLUES = (
    *_NOT_CLUES,
    "undone",
    "un-done",
    "pending",
    "open",
    "active",
    "incomplete",
    "unfinished",
    "to do",
)
_PRIORITY_CLUES = ("high", "low", "medium", "normal", "urgent", "important", "priorit", "top")


def _clues_of(pattern: str) -> tuple[str, ...] | None:
    if "(?P<field>title|name" in pattern:
        return _FIELD_CLUES
    if "un-?done|" in pattern:
        return _NOT_DONE_CLUES
    if "(?:\\s+not|n't)" in pattern or "(?:not|n't)" in pattern:
        return _NOT_CLUES
    if "(?P<rest>.+?)(?:\\s+(?:is|are|was" in pattern:
        return _PASSIVE_CLUES
    if "(?P<value>(?:(?:a\\s+|the\\s+)?(?:high" in pattern:
        return _PRIORITY_CLUES
    return None


_CLUES = {
    pattern: clues for _, _, pattern in RULES if (clues := _clues_of(pattern.pattern)) is not None
} | _GIVEN_CLUES
_BY_SCORE = sorted(
    (rule for rule in RULES if rule[0] not in _SMALL_TALK), key=lambda rule: -rule[1]
)


def _build(
    intent: Intent, groups: dict[str, str], sentence: str, *, now: datetime, tz: ZoneInfo
) -> Command | None:
    """Read a matched rule's pieces; None when they do not make sense."""
    if intent in _SMALL_TALK or intent in {Intent.UNDO, Intent.DISMISS}:
        return Command(intent)
    if intent is Intent.SNOOZE:
        minutes = offset_minutes(groups["offset"]) if "offset" in groups else SNOOZE_MINUTES
        return Command(Intent.SNOOZE, minutes=minutes) if minutes else None
    if intent is Intent.ADD and "remind_at" in groups:
        moment = parse_due(groups["remind_at"], now=now, tz=tz)
        if moment is None:
            return None
        added = _add_many(groups["rest"], now=now, tz=tz)
        items = tuple(replace(item, reminders=(Reminder(at=moment),)) for item in added.items)
        return replace(added, reminders=(Reminder(at=moment),), items=items)
    if intent is Intent.UPDATE and groups.keys() & {"offset", "remind_at", "unremind"}:
        return _remind(groups, now=now, tz=tz)
    if intent is Intent.CLARIFY:
        if re.search(r"\b(?:to|as)\b|:", groups["ref"]):
            return None  # the value is given: an edit, not a question
        return Command(Intent.CLARIFY, title=sentence, options=(Intent.UPDATE,))
    if intent is Intent.FACT:
        return _fact(groups)
    if intent in {Intent.COMPLETE, Intent.DELETE, Intent.REOPEN, Intent.ANSWER}:
        if _NEGATED.fullmatch(groups["ref"].rsplit(" ", 1)[-1]):
            return None  # "mark task 3 as not done" is no completion of "task 3 as not"
        ref = read_ref(groups["ref"], now=now, tz=tz)
        several = _several_titles(groups["ref"]) if intent in _SEVERAL_INTENTS else ()
        if ref is None and several:
            ref = TaskRef(title=_squeeze(groups["ref"]))
        if ref is None:
            return None
        if ref.bulk and intent not in {Intent.COMPLETE, Intent.DELETE}:
            return None
        if several and ref.title is not None:
            ref = replace(ref, titles=several)
        if "deleting" in groups and _chore_words(groups, ref):
            return _chore_or_delete(Command(intent, ref=ref), groups, sentence, now=now, tz=tz)
        return Command(intent, ref=ref)
    if intent is Intent.UPDATE and "ask" in groups:
        # "rename task 3": the new title is still to come.
        asked = groups["ask"]
        if len(asked) > _REF_MAX or re.search(r"\b(?:to|as|into)\b|:|^(?:an?|some)\s", asked):
            return None
        ref = read_ref(asked)
        if ref is None or ref.bulk:
            return None
        return Command(Intent.UPDATE, ref=ref)
    if intent is Intent.UPDATE:
        edit = _update(groups, now=now, tz=tz)
        return replace(edit, title=sentence) if edit and edit.intent is Intent.CLARIFY else edit
    if intent is Intent.LIST and groups.keys() & {"asked_due", "asked_done"}:
        asked = groups.get("asked_due") or groups.get("asked_done") or ""
        words = asked.split()
        if (words[-1] if "asked_done" in groups else words[0]).lower() in _INDEFINITE | {
            "today",
            "tomorrow",
        }:
            return None  # "when is anything due", "did I pay anything today"
        ref = read_ref(asked)
        if ref is None or ref.bulk or ref.ordinal is not None:
            return None
        if ref.title is not None and _ABOUT_TASKS.search(fold_case(ref.title)):
            return None  # "when are my tasks due", "when is my next task": a list
        return Command(Intent.LIST, ref=ref, asks="due" if "asked_due" in groups else "done")
    if intent is Intent.LIST and groups.keys() & {"about", "about2", "about3"}:
        about = groups.get("about") or groups.get("about2") or groups.get("about3") or ""
        if about.split()[0].lower() in _INDEFINITE:
            return None  # "did I finish anything today" asks about the past, not one task
        ref = read_ref(about)
        if ref is None or ref.bulk or ref.pronoun or ref.ordinal is not None:
            return None
        if ref.title is not None and _ABOUT_TASKS.search(fold_case(ref.title)):
            return None  # "are my tasks done?": a list
        return Command(Intent.LIST, ref=ref, asks="status")
    if intent is Intent.LIST and "caughtup" in groups:
        return Command(Intent.LIST, filters=ListFilters(status="pending"))
    if intent is Intent.ADD and "appointment" in groups:
        # "I have a dentist appointment on friday at 2pm": an event with its day is a task.
        told = _add(groups["appointment"], now=now, tz=tz)
        if len(sentence) > _REF_MAX or told.due_at is None or not told.title:
            return None
        return told
    if intent is Intent.ADD and "imperative" in groups:
        # "buy milk tomorrow": a task said as an order to oneself, with its day, which may come
        # first ("tomorrow call mom", "due 12/25 pay rent").
        if len(sentence) > _REF_MAX:
            return None
        if groups["imperative"].lower() not in ACTION_VERBS:
            day = find_due(sentence, now=now, tz=tz)
            after = sentence[day.end :].split() if day is not None and day.start == 0 else []
            if not after or after[0].lower() not in ACTION_VERBS:
                return None
        told = _add(sentence, now=now, tz=tz)
        return told if told.due_at is not None and told.title else None
    if intent is Intent.ADD:
        if "want" in groups:  # "I need to ...": a task, or a request in other words
            rest = groups["want"]
            if _starts_with_command(rest):
                inner = understand(rest, now=now, tz=tz)
                plans = {Intent.UNKNOWN, Intent.ADD, Intent.CLARIFY, Intent.COMPLETE, Intent.FACT}
                # "I need to cancel my gym membership": a chore to do, not a task to delete.
                chore = inner.intent is Intent.DELETE and inner.doubt is not None
                if inner.intent is Intent.DELETE and inner.chore is not None and not chore:
                    # "I need to cancel the dentist", "I need to remove gym": a need may be
                    # the chore or the task's end; the agent asks before deleting any task.
                    return replace(inner, doubt="any")
                if inner.intent not in plans and not chore:
                    return inner  # "I want to see my tasks", "I need to delete task 3"
            return _add_many(rest, now=now, tz=tz)
        if "rest" not in groups:
            return Command(Intent.ADD)  # "add a task": the title is still to come
        added = _add_many(groups["rest"], now=now, tz=tz)
        if _REMIND_WORD.search(fold_case(sentence)):
            # "remind me to call the dentist on friday at 3pm": due then, and a reminder then.
            added = _reminded_when_due(added)
        return added
    if intent is Intent.LIST:
        return _list(groups, sentence, now=now, tz=tz)
    return None


_INDEFINITE = frozenset(
    ("anything", "something", "nothing", "everything", "stuff", "much", "any", "all", "a", "it")
)
# How long a snooze lasts when the user does not say.
SNOOZE_MINUTES = 10
_REMIND_WORD = re.compile(r"\bremind(?:er)?\b")


def _reminded_when_due(command: Command) -> Command:
    """New tasks asked for as reminders: each with a due date gets a reminder at it."""
    at_due = (Reminder(before_due_minutes=0),)
    items = tuple(
        replace(item, reminders=at_due) if item.due_at is not None else item
        for item in command.items
    )
    reminders = at_due if command.due_at is not None else command.reminders
    return replace(command, items=items, reminders=reminders)


def _remind(groups: dict[str, str], *, now: datetime, tz: ZoneInfo) -> Command | None:
    """A reminder set on (or taken off) a task that exists: "remind me an hour before",
    "remind me about it at 4pm", "stop reminding me about the dentist"."""
    said = groups.get("ref")
    ref = read_ref(said) if said else TaskRef(pronoun=True)
    if ref is None or ref.bulk:
        return None
    if "unremind" in groups:
        return Command(Intent.UPDATE, ref=ref, reminders=())
    if "offset" in groups:
        minutes = offset_minutes(groups["offset"])
        if minutes is None:
            return None
        return Command(Intent.UPDATE, ref=ref, reminders=(Reminder(before_due_minutes=minutes),))
    moment = parse_due(groups["remind_at"], now=now, tz=tz)
    if moment is None:
        return None
    return Command(Intent.UPDATE, ref=ref, reminders=(Reminder(at=moment),))


_NEGATED = re.compile(r"not|\w*n't|never|longer", re.IGNORECASE)

# "create a task called Finish the report": the title is named, never read as a command.
_NAMED = re.compile(
    rf"^(?:{_any('add')})\s+(?:(?:a|an|another|the)\s+)?(?:new\s+)?{_TASK_WORD}\s+"
    r"(?:called|named|titled|saying|that says)\b|^\S+\s+['\"\u201c\u2018]",
    re.IGNORECASE,
)


# --- a chore said with a word for deleting --------------------------------------------------

# Words for deleting that are only ever said of the list: title words after them, a time
# too ("delete gym tomorrow"), name a task.
_LIST_ONLY_VERBS = frozenset(
    ("delete", "del", "rm", "erase", "forget", "forget about", "scratch", "cross out")
)
# Words for deleting that are everyday chores as well: title words after them may name the
# chore, not a task. Said of a plan ("cancel the dentist", "drop the gym", "scrap the party
# planning"), as the words not listed here are, they mean the task goes; said of a thing
# ("clear the table", "wipe the counters", "throw out old milk") they are a chore done to it,
# and delete only the task they name whole.
# Any of them but the list's own, said of the user's own thing ("cancel my gym membership",
# "take off my shoes"), may be the chore. Otherwise the slang of apps ("remove", "trash",
# "kill", "nuke", "bin", "take off") is read as deleting the task its words find.
_THING_VERBS = frozenset(
    ("clear", "clear out", "wipe", "throw out", "throw away", "chuck out", "toss")
)
# Words that say the thing is the user's own, in the world, rather than a task's name.
_OWNED = frozenset(("my", "our", "his", "her", "their"))
# A word after the verb that makes it another verb, a chore's: "drop off the package", "trash
# out", "clear up the kitchen", "wipe down the counters".
_PARTICLES = frozenset(("off", "out", "away", "up", "down"))
# When a chore is done, in words the dates do not read: "clear the table after dinner".
_CHORE_TIME = re.compile(
    r"\b(?:(?:after|before)\s+(?:(?:the|my|your|our)\s+)?(?:breakfast|brunch|lunch|dinner|"
    r"supper|work|school|class|bed|bedtime|church|practice|training|gym|meeting|party|shopping|"
    r"leaving)|later(?:\s+today|\s+on)?|first thing)$"
)
_TASK_WORD_IN = re.compile(rf"\b{_TASK_WORD}\b")  # read in ``fold_case`` text


def _deleting_verb(groups: dict[str, str]) -> str:
    """The word for deleting a rule matched, as the sets above spell it ("throw  Out")."""
    return " ".join(groups["deleting"].lower().split())


def _chore_words(groups: dict[str, str], ref: TaskRef) -> bool:
    """Whether a delete's words are title words alone, which may name a chore as well as a
    task ("cancel my gym membership"): not a number, "it", a kind of task, several names, a
    quoted title, the task word ("the milk task") or the list ("... from my list"), and not
    after a word only ever said of the list ("delete", "erase")."""
    said = groups["ref"].strip()
    return (
        _deleting_verb(groups) not in _LIST_ONLY_VERBS
        and ref.title is not None
        and not ref.titles
        and said[:1] not in QUOTES
        and _TASK_WORD_IN.search(fold_case(said)) is None
        and _LIST_SUFFIX.search(said) is None
    )


def _chore_or_delete(
    command: Command, groups: dict[str, str], sentence: str, *, now: datetime, tz: ZoneInfo
) -> Command:
    """A delete of title words that may be a chore to do. When they say when it is done
    ("remove the trash tonight", "clear the table after dinner") or make the verb another
    one ("drop off the package", "trash out"), it is: a task to add, never a reference to
    one to delete (no task is due to be deleted tomorrow). Otherwise a delete that carries
    the chore (``Command.chore``) and how much it is in doubt (``Command.doubt``)."""
    said = groups["ref"].strip()
    first = said.split()[0].lower()
    when = _when_at_end(said, now=now, tz=tz)
    if when is not None and not set(said[:when].lower().split()) - _DETERMINERS:
        # "clear today", "cancel my friday": the day is all there is, so no chore is named;
        # the words are a task's, as they were before chores were read.
        return command
    if first in _PARTICLES or when is not None:
        return _add(sentence, now=now, tz=tz)
    doubt = None
    if first in _OWNED:
        doubt = "any"
    elif _deleting_verb(groups) in _THING_VERBS:
        doubt = "partial"
    chore = _add(sentence, now=now, tz=tz).title
    return replace(command, chore=chore, chore_said=sentence, doubt=doubt)


def _when_at_end(words: str, *, now: datetime, tz: ZoneInfo) -> int | None:
    """Where a day or time ending ``words`` starts: one the dates read, or a chore's own
    ("after dinner"); None when they end otherwise."""
    found = find_due(words, now=now, tz=tz)
    if found is not None and not words[found.end :].strip(" .,!?"):
        return found.start
    chore_time = _CHORE_TIME.search(fold_case(words))
    return chore_time.start() if chore_time is not None else None


# --- completion stated as a fact -------------------------------------------------------------

_FACT_OBJECT_NOISE = re.compile(
    r"\s+(?:today|yesterday|this morning|earlier|already|just now|at last|finally|"
    r"too|as well|by the way)$",
    re.IGNORECASE,
)


def _fact(groups: dict[str, str]) -> Command | None:
    """ "I bought the groceries": the verb and its object, matched against pending titles by
    the agent. Needs an object: "I walked" alone states nothing about a task."""
    verb = groups["verb"].lower()
    rest = groups["rest"].strip(" .!")
    if len(rest.split()) > 8 or rest.lower().startswith("to "):
        return None  # "I've got to renew ..." is a plan, not a fact
    rest = _FACT_OBJECT_NOISE.sub("", rest)
    if not rest or _TASK_TALK.fullmatch(fold_case(rest)) or _starts_with_command(rest):
        return None
    if verb in {"finished", "completed", "did", "done", "needed", "wanted", "required"} or (
        verb.endswith("eed")
    ):
        return None  # the COMPLETE readings read these; "need", "feed" are no past tense
    if len(rest.split()) > 8:
        return None
    return Command(Intent.FACT, fact=f"{verb} {rest}")


# --- task references -------------------------------------------------------------------------

_IDS = re.compile(
    rf"^(?:the\s+)?(?:{_TASK_WORD}\s*)?(?:(?:number|no\.?|#)\s*)?#?(?P<first>\d+)"
    r"(?P<more>(?:\s*(?:,|and|&|\+)\s*(?:(?:task\s*)?#?\d+))*)$",
    re.IGNORECASE,
)
_PRONOUN = re.compile(
    r"^(?:it|its|it's|that|this|that one|this one|the same one|that task|this task|the task|task|"
    r"the last task|the one i just added|the last one i added|the one you just added|"
    r"the previous one|the previous task|that one too|them|those|these)$",
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
# "all", "everything", "all my completed tasks", "every task tagged #errands", "them all".
_BULK = re.compile(
    r"^(?:(?:the\s+)?(?:tasks|todos|items|ones)\s+(?:that are|which are|that i've|i've|i have|"
    r"already)\s+(?:done|completed|finished)|all|everything|"
    r"every(?:thing| task| item| one| single task)?|them all|all of them|"
    r"each task|all (?:of )?(?:my |the )?|(?:my |the )?(?:completed|finished|done|pending|"
    r"old|open|overdue) (?:tasks|todos|items|ones)|(?:completed|finished|done)$)\b",
    re.IGNORECASE,
)
_REF_NOISE = re.compile(
    rf"^(?:the|my|a|an)\s+|\s+(?:{_TASK_WORD}|one)$|^(?:{_TASK_WORD})\s+(?:called|named|titled|"
    r"about|for|to)?\s*|^(?:called|named|titled)\s+",
    re.IGNORECASE,
)
_EPOCH = datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))
# A reference by words is at most a title's length (the todo service keeps 200 characters).
_REF_MAX = 250
# What may follow a reference without being part of it: "... from my list", "... anymore".
_LIST_SUFFIX = re.compile(
    r"\s+(?:from|off|on|in|out of)\s+(?:my|the)\s+(?:[\w-]+\s+)?(?:list|tasks|todos|to-?dos)$|"
    r"\s+as\s+(?:done|complete|completed|finished)$",
    re.IGNORECASE,
)
_TAIL_WORDS = frozenset(
    ("anymore", "again", "now", "too", "completely", "entirely", "altogether", "please")
)
_TAIL_PAIRS = frozenset((("any", "more"), ("for", "good"), ("as", "well")))


def _strip_ref_tail(phrase: str) -> str:
    """``phrase`` without what may follow a reference: "... from my list", "... anymore".
    Word by word from the right (a pattern with a repeated tail is quadratic over a long
    run of such words)."""
    words = phrase.split(" ")
    while words:
        last = words[-1].lower()
        if last in _TAIL_WORDS:
            words.pop()
        elif len(words) > 1 and (words[-2].lower(), last) in _TAIL_PAIRS:
            del words[-2:]
        else:
            break
    return _LIST_SUFFIX.sub("", " ".join(words))


_QUESTION_WORD = re.compile(
    r"^(?:what|which|who|how|why|where|when|whats|what's|is there|are there|do i|did i|"
    r"have i|any|i|you|we|show|list|display|tell|give)\b",
    re.IGNORECASE,
)


def read_ref(
    text: str, *, now: datetime | None = None, tz: ZoneInfo | None = None
) -> TaskRef | None:
    """A task reference: ``task 3``/``#3``/``3 and 4``, ``it``, ``the second one``, every task
    of a kind (``all completed tasks``), or title words (``the meeting task`` -> ``meeting``).
    """
    # Squeezed: a reference may be a raw message (the answer to "which one?").
    phrase = _squeeze(text).strip(".!?,").strip()
    phrase = _strip_ref_tail(phrase).strip(".!?, ")
    if not phrase or _QUESTION_WORD.match(phrase):
        return None  # "which tasks are done?" asks, it names no task
    ids = _IDS.match(phrase)
    if ids is not None:
        numbers = [int(ids["first"]), *map(int, re.findall(r"\d+", ids["more"]))]
        return TaskRef(ids=tuple(dict.fromkeys(numbers)))
    if ", " in phrase and phrase[:1] not in QUOTES:
        return None  # "it, mark it as done": a clause, not a name
    if len(phrase) > _REF_MAX:
        return None  # longer than any title: a sentence, not a reference
    if _PRONOUN.match(phrase):
        return TaskRef(pronoun=True)
    ordinal = _ORDINAL.match(phrase)
    if ordinal is not None:
        return TaskRef(ordinal=_ORDINALS[ordinal["word"].lower()])
    if _BULK.match(phrase):
        return _bulk_ref(phrase, now=now or _EPOCH, tz=tz or ZoneInfo("UTC"))
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
    if title.lower() in _DETERMINERS:
        return None  # "change the title to ...": "the" names no task
    return TaskRef(title=title) if title and not _PRONOUN.match(title) else None


# The intents that may name several tasks by title in one message (each asks for a yes first).
_SEVERAL_INTENTS = frozenset((Intent.COMPLETE, Intent.DELETE))
_SEVERAL_MAX = 10


def _several_titles(text: str) -> tuple[str, ...]:
    """The title words of each task a list names ("call mom and buy milk" -> "call mom",
    "buy milk"), or () when ``text`` is no list of plain task names: a part that is a number,
    "it", a command ("..., delete it") or a kind of task ("all the old ones") makes none."""
    phrase = _strip_ref_tail(_squeeze(text)).strip(".!?, ")
    if len(phrase) > _REF_MAX or phrase[:1] in QUOTES:
        return ()
    parts = [part for part in _LIST_SPLIT.split(phrase) if part.strip()]
    if not 2 <= len(parts) <= _SEVERAL_MAX:
        return ()
    titles = []
    for part in parts:
        ref = None if _starts_with_command(part) else read_ref(part)
        if ref is None or ref.title is None or ref.bulk:
            return ()
        titles.append(ref.title)
    return tuple(titles)


_BULK_WORDS = _word_set(
    """
    all every everything each one ones single them of my the tasks task todos todo items item
    that are which i've i have already done completed complete finished pending open old overdue
    due today tomorrow this week next as to-dos things stuff that's is were was been you've
    we've we have has got already marked ticked checked off
    """
)
_DETERMINERS = frozenset(("the", "a", "an", "my", "its", "his", "her", "their", "our", "your"))


def _bulk_ref(phrase: str, *, now: datetime, tz: ZoneInfo) -> TaskRef | None:
    """Every task the phrase describes: its status, tag, priority and due window. An
    exception ("everything except the milk task") is not read: no bulk guess."""
    if re.search(r"\b(?:except|but not|other than|apart from|besides|excluding)\b", phrase, re.I):
        return None
    described = _list({"rest": phrase}, f"tasks {phrase}", now=now, tz=tz)
    filters = described.filters if described is not None else ListFilters()
    if filters.tag is None and filters.q is None:
        # "all my errands", "all the shopping tasks": the word left is what they are (a tag).
        left = [w for w in re.findall(r"[\w'-]+", phrase.lower()) if w not in _BULK_WORDS]
        if len(left) == 1:
            filters = replace(filters, tag=left[0])
    if filters.q is not None and not re.search(
        r"\b(?:about|mentioning|containing|called)\b", phrase
    ):
        filters = replace(filters, q=None)
    return TaskRef(bulk=True, filters=None if filters == ListFilters() else filters)


def _quoted(text: str) -> str | None:
    match = re.fullmatch(rf"\s*[{OPEN_QUOTES}](.+?)[{CLOSE_QUOTES}]\s*", text)
    return match.group(1).strip() if match else None


# --- new tasks -------------------------------------------------------------------------------

# The priority, tag, recurrence and status words are searched for in ``fold_case`` text.
_PRIORITY_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), value)
    for pattern, value in (
        (r"\bnot\s+urgent\b|\bunimportant\b|\bnot\s+(?:very\s+)?important\b", "low"),
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
    r"\s*\b(?:tagged|tag(?:ged)?\s+(?:it\s+)?(?:as|with)|tag it|with\s+(?:the\s+)?tags?|"
    r"label(?:led)?\s+"
    r"(?:as|with)?)\s+(?P<tags>[\w-]+(?:\s*(?:,|and)\s*[\w-]+)*)",
)
_WEEKDAY = "(?:" + "|".join(sorted(WEEKDAYS, key=len, reverse=True)) + r")\b"
# "every monday and thursday", "each mon, wed and fri", "every monday and every thursday":
# more than one day of the week, each after the one before and its joining word.
_SEVERAL_WEEKDAYS = re.compile(
    rf"\b(?:every|each)\s+{_WEEKDAY}(?:(?:,\s*(?:(?:and|&|or)\s+)?|\s+(?:and|&|or)\s+)"
    rf"(?:(?:every|each)\s+)?{_WEEKDAY})+"
)
_WEEKDAY_WORD = re.compile(_WEEKDAY)
# "every weekday": Monday to Friday, five days of the week.
_EVERY_WORKDAY = re.compile(r"\b(?:(?:every|each)\s+week\s?day|on\s+weekdays)\b")
# A repetition no task holds: "every 3 days", "every other week", "twice a day", "yearly".
_ODD_REPETITION = re.compile(
    r"\b(?:every|each)\s+(?:other|second|third|few|couple\s+of|\d{1,3}|two|three|four|five|six)"
    rf"\s+(?:(?:day|week|month|year|hour|minute)s?\b|{_WEEKDAY})"
    r"|\b(?:every|each)\s+(?:hour|year)\b"
    r"|\b(?:twice|thrice|(?:\d{1,2}|two|three|four|five)\s+times)\s+(?:a|an|per|each|every)\s+"
    r"(?:day|week|month|year)\b"
    # An adverb only where it says how the task repeats, not of what ("yearly report"): last,
    # or before the day or time it starts.
    r"|\b(?:biweekly|fortnightly|bimonthly|hourly|yearly|annually)"
    r"(?=\s*$|\s+(?:on|at|from|starting|beginning)\s)"
)
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_RECURRENCE: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), value)
    for pattern, value in (
        # "every monday": weekly, the weekday left for the due date. Not "every monday and
        # thursday", which one weekly task cannot be.
        (rf"\b(?:every|each)\s+(?={_WEEKDAY}(?!\s*(?:,|and|&|or)?\s*{_WEEKDAY}))", "weekly"),
        # "on the 1st of every month": monthly, "on the 1st" left for the due date.
        (r"(?<=\d(?:st|nd|rd|th))\s+of\s+(?:every|each)\s+month\b", "monthly"),
        (r"\b(?:every\s*day|daily|each day)\b", "daily"),
        (r"\b(?:every\s*week|weekly|each week)\b", "weekly"),
        (r"\b(?:every\s*month|monthly|each month)\b", "monthly"),
    )
)
# "with notes ...", or "notes: ..." after the title. A bare word needs its colon: "meeting
# notes on monday" and "buy notebook" are titles, not a title and a description.
_DESCRIPTION = re.compile(
    r"\s*(?:,\s*|\s+)(?:with\s+(?:the\s+)?(?:description|details?|notes?)\b\s*[:=]?|"
    r"(?:description|details?|notes?)\s*[:=])\s*(?P<text>.+)$",
    re.IGNORECASE,
)
_LIST_TAIL = re.compile(
    rf"\s+(?:to|on|onto|in|into)\s+(?:my|the)\s+(?:{_TASK_WORD}\s+|shopping\s+|grocery\s+|"
    rf"work\s+|\w+'s\s+)?(?:list|tasks|todos|"
    r"to-?do list|to do list)\b",
    re.IGNORECASE,
)
_TITLE_LEAD = re.compile(
    rf"^(?:(?:a|an|the|new)\s+)*(?:{_FILLER_TASK_WORD}(?:\s*:\s*|\s+))?(?:(?:to|for|about|"
    r"called|named|"
    r"titled|that|saying|:|-)\s+)?",
    re.IGNORECASE,
)
# "remember that I have a meeting": the meeting is the task.
_STATEMENT_LEAD = re.compile(
    r"^(?:i have|i've got|i got|there's|there is|we have)\s+(?=(?:a|an)\s+)", re.IGNORECASE
)
_RECURRENCE_TAIL = re.compile(r"\s+(?:on|at|every|each)$", re.IGNORECASE)


# Verbs a task title typically starts with: "add call mom and email Sam" is two tasks,
# "add fish and chips for dinner" one.
ACTION_VERBS = _word_set(
    """
    apply arrange ask attend back back-up backup bake bathe boil book bring brush buy call
    cancel celebrate change charge check clean clear collect confirm contact cook cut
    declutter defrost deliver do donate download draft drop dust edit email empty exercise
    feed fetch file fill finalise finalize finish fix fry get go grab grill hang hire hoover
    install invite iron jog knit lift list load mail make meet mend message mop mow
    negotiate order organise organize outline pack paint pay phone pick plan plant polish
    post practice practise pray prepare print proofread put rake read recycle refill
    register renew rent repair replace reply research reserve return review ring run
    schedule scrub see sell send sew shop shovel sign sort start study submit sweep swim
    take talk tell text thank tidy train translate trim unload update upload vacuum visit
    walk wash water weed wipe wrap write
    """
)
# Verbs a later request's title words may follow as a chore's ("add wash the car and
# complete the tax return"): after a new task, such words are not a request alone.
_CHORE_VERBS = ACTION_VERBS | {"complete", "close", "set"}
_LIST_SPLIT = re.compile(r"\s*[,;]\s*(?:and\s+|&\s+)?|\s+(?:and|&)\s+", re.IGNORECASE)
# A list without commas: "call mom and email Sam", "pack then leave".
_AND_SPLIT = re.compile(r"\s+(?:and|&|then)\s+", re.IGNORECASE)
# Pairs that are one thing, not two tasks.
_COMPOUNDS = _word_set(
    """
    fish-chips salt-pepper mac-cheese bread-butter pros-cons black-white trial-error
    rock-roll bed-breakfast peanut-jelly cheese-crackers cookies-milk bits-pieces odds-ends
    nuts-bolts arts-crafts q-a r-d b-b
    """
)
_LIST_LEAD = re.compile(
    r"^(?:(?:\d+|two|three|four|five|six|some|these|a few|few|the following|following|all of "
    r"these|all these)\s*(?:new\s+)?(?:tasks|things|items|todos|to-dos|reminders)?\s*:\s*|"
    r"(?:tasks|things|items|todos|the following)\s*:\s*|"
    r"(?:these|those|the following|this)(?:\s+(?:tasks|things|items))?\s+(?:to|on|onto)\s+"
    r"(?:my|the)\s+(?:[\w-]+\s+)?list\s*:?\s*)",
    re.IGNORECASE,
)


_QUOTED_TITLE = re.compile(r"[\"\u201c]([^\"\u201c\u201d]+)[\"\u201d]|'((?:[^']|'(?=[A-Za-z]))+)'")
_QUOTED_TITLES = re.compile(
    r"(?:[\"\u201c][^\"\u201c\u201d]+[\"\u201d]|'[^']+')"
    r"(?:\s*(?:,|and|&|,\s*and)\s*(?:[\"\u201c][^\"\u201c\u201d]+[\"\u201d]|'[^']+'))+"
)
_PUT_IT = re.compile(r"^(?:put|add|stick|write|note|pop)\s+(?:it|that|this)\b", re.IGNORECASE)


def _add_many(rest: str, *, now: datetime, tz: ZoneInfo) -> Command:
    """One new task, or several: "milk, eggs and bread", "call mom and email Sam". A quoted
    title, a description, or a part that would be no title of its own ("..., high priority")
    keeps the text one task."""
    text = _LIST_TAIL.sub("", _LIST_LEAD.sub("", rest.strip()))
    text = re.sub(
        r"\s+and\s+(?:also\s+|then\s+)?to\s+|\s+and\s+also\s+|\s+and\s+then\s+", " and ", text
    )
    single = _add(text, now=now, tz=tz)
    lowered = text.lower()
    if not any(mark in lowered for mark in (",", ";", " and ", " & ", " then ")):
        return single  # nothing to split at
    if lowered.count(",") + lowered.count(";") + lowered.count(" and ") > 20:
        return single  # more than a message's worth of tasks: read as one
    quoted = _QUOTED_TITLES.fullmatch(text)
    if quoted is not None:  # 'add "buy milk" and "call mom"': each quoted title is a task
        titles = [(m.group(1) or m.group(2)).strip() for m in _QUOTED_TITLE.finditer(text)]
        if len(titles) > 1:
            items = tuple(Command(Intent.ADD, title=t) for t in titles if t)
            return Command(Intent.ADD, title=single.title, items=items)
    if text[:1] in QUOTES or _DESCRIPTION.search(text) or not single.title:
        return single
    if "," in text or ";" in text:
        parts = _list_parts(_LIST_SPLIT, text)
    else:
        parts = _list_parts(_AND_SPLIT, text)
        words = [p.split() for p in parts]
        # Every part starts with a verb ("call mom and email Sam"), but the first may instead
        # say its own day or repetition, which ends it ("gym every monday and call mom").
        leads = words[0][0].lower() in ACTION_VERBS or _says_when(parts[0], now=now, tz=tz)
        verbs = leads and all(w[0].lower() in ACTION_VERBS for w in words[1:])
        verbs = verbs and len(words[0]) > 1
        pair = len(parts) == 2 and all(len(w) == 1 for w in words)
        if pair and "-".join(p.lower() for p in parts) in _COMPOUNDS:
            return single
        if not verbs and not pair:
            return single
    if len(parts) < 2 or len(parts) > 20:
        return single
    kept = [p for p in parts if not _PUT_IT.match(p)]
    if len(kept) < len(parts):  # "clean the fridge, put it on my list": one task
        return _add_many(", ".join(kept), now=now, tz=tz) if kept else single
    items = tuple(_add(part, now=now, tz=tz) for part in parts)
    if not all(
        item.title and _TASK_TALK.fullmatch(fold_case(item.title)) is None for item in items
    ):
        return single
    first = parts[0].split()
    if len(first) > 1 and first[0].lower() in ACTION_VERBS:
        # "buy milk, eggs and bread": one verb for every item named by a word or two.
        verb = first[0].lower()
        items = tuple(
            item
            if part.split()[0].lower() in ACTION_VERBS or len(part.split()) > 2
            else _add(f"{verb} {part}", now=now, tz=tz)
            for part, item in zip(parts, items, strict=True)
        )
    return Command(Intent.ADD, title=single.title, items=items)


def _list_parts(split: re.Pattern[str], text: str) -> list[str]:
    """The parts of a list of tasks, cut where ``split`` matches but in the days of one task
    ("gym every monday and thursday, milk and eggs": that task, milk, eggs; "yoga every mon,
    wed and fri" is one part)."""
    parts: list[str] = []
    kept, start = "", 0  # the part a task's days run on in, and where the text goes on
    for days in _SEVERAL_WEEKDAYS.finditer(fold_case(text)):
        *done, last = split.split(text[start : days.start()])
        parts += [kept + done[0], *done[1:]] if done else []
        kept = (last if done else kept + last) + text[days.start() : days.end()]
        start = days.end()
    first, *rest = split.split(text[start:])
    parts += [kept + first, *rest]
    return [part for part in parts if part.strip()]


def _says_when(part: str, *, now: datetime, tz: ZoneInfo) -> bool:
    """Whether a new task's words give it a due date or a repetition (on several weekdays
    too)."""
    told = _add(part, now=now, tz=tz)
    return (
        told.due_at is not None
        or told.recurrence is not None
        or bool(told.weekdays)
        or told.repeats is not None
    )


_BOOKING = re.compile(r"^\W*(?:book|reserve|order|rent|hire)\b", re.IGNORECASE)


def _add(rest: str, *, now: datetime, tz: ZoneInfo) -> Command:
    text = rest.strip()
    quoted_title = None
    # An apostrophe inside a word ("Tom's") does not close the quote.
    quoted = re.match(
        rf"^\s*[{OPEN_QUOTES}](?P<title>.+?)[{CLOSE_QUOTES}](?![A-Za-z])(?P<after>.*)$", text
    )
    if quoted:
        quoted_title, text = quoted["title"].strip(), quoted["after"]

    description = None
    found = _DESCRIPTION.search(text)
    if found:
        description = found["text"].strip().strip(QUOTES).strip() or None
        text = text[: found.start()]

    text, tags = _take_tags(text)
    text, priority = _take_priority(text)
    text, weekdays = _take_weekdays(text)
    repeats = None
    odd = _ODD_REPETITION.search(fold_case(text))
    if odd is not None:
        repeats, text = odd.group(0), _without(text, odd.start(), odd.end())
    text, recurrence = _take_recurrence(text)
    due_at = None
    due = find_due(text, now=now, tz=tz)
    if due is not None and _BOOKING.match(text) and text[due.start :].lower().startswith("for "):
        # "book a table for saturday night": when the booking is for, not a due date; one may
        # follow ("... by tomorrow").
        after = find_due(text[due.end :], now=now, tz=tz)
        due = (
            None
            if after is None
            else replace(after, start=after.start + due.end, end=after.end + due.end)
        )
    at = None
    if due is not None and not text.startswith(("'s", "\u2019s"), due.end):
        due_at = due.moment
        if due_parts(text[due.start : due.end]) == "time":
            at = due.moment.astimezone(tz).time()  # "on the 3rd at 2:30pm": that day's time
        text = _without(text, due.start, due.end)
    if due_at is None or at is not None:
        nth = _BY_DAY_OF_MONTH.search(text)
        that_day = None if nth is None else _day_of_month(int(nth["day"]), at, now=now, tz=tz)
        if nth is not None and that_day is not None:
            due_at, text = that_day, text[: nth.start()]
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
        weekdays=weekdays,
        repeats=repeats,
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


def _take_weekdays(text: str) -> tuple[str, tuple[str, ...]]:
    """ "every monday and thursday" taken out of ``text``, and the days it names."""
    found = _SEVERAL_WEEKDAYS.search(fold_case(text))
    if found is None:
        workdays = _EVERY_WORKDAY.search(fold_case(text))
        if workdays is None:
            return text, ()
        return _without(text, workdays.start(), workdays.end()), DAY_NAMES[:5]
    days = (DAY_NAMES[WEEKDAYS[day]] for day in _WEEKDAY_WORD.findall(found.group(0)))
    return _without(text, found.start(), found.end()), tuple(dict.fromkeys(days))


def _take_recurrence(text: str) -> tuple[str, str | None]:
    folded = fold_case(text)
    for pattern, value in _RECURRENCE:
        match = pattern.search(folded)
        if match:
            return _without(text, match.start(), match.end()), value
    return text, None


def _tidy_title(text: str) -> str:
    title = " ".join(text.split())
    title = _STATEMENT_LEAD.sub("", title)
    title = _TITLE_LEAD.sub("", title)
    title = _RECURRENCE_TAIL.sub("", title)
    title = re.sub(r"\s+(?:by|on|at|due|for|before)$", "", title, flags=re.IGNORECASE)
    # "add eggs too", "and bread as well": the addition, not part of the title.
    title = re.sub(r"\s+(?:too|as well|also)$", "", title, flags=re.IGNORECASE)
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


# "make that 11": a number alone, the hour of the due time of the task just talked about
# ("it", "that"); after a task named by its number or title ("change task 1 to 5") it may be
# anything, and the agent asks.
_BARE_HOUR = re.compile(r"[1-9]|1\d|2[0-3]")
_SAYING = re.compile(r"^(?:say|read|be called|be named|be)\s+(?=[^\s])", re.IGNORECASE)
# "move the report deadline to thursday": the field named after the task is no title word.
_DUE_FIELD_TAIL = re.compile(r"\s+(?:deadline|due date|due time|date|time)$", re.IGNORECASE)


def _update(groups: dict[str, str], *, now: datetime, tz: ZoneInfo) -> Command | None:
    ref = TaskRef(pronoun=True) if "pron" in groups else read_ref(groups["ref"])
    if ref is not None and ref.title and ("when" in groups or groups.get("field") is None):
        untailed = _DUE_FIELD_TAIL.sub("", ref.title)
        if untailed != ref.title and untailed:
            ref = replace(ref, title=untailed)
    if ref is not None and ref.bulk:
        return None
    if ref is None:
        return None
    if "shift" in groups:
        minutes, sign = offset_minutes(groups["shift"]), _shift_sign(groups)
        if not minutes or sign is None:
            return None
        return Command(Intent.UPDATE, ref=ref, shift_minutes=sign * minutes)
    if "when" in groups:
        hour = _BARE_HOUR.fullmatch(groups["when"]) if ref.pronoun else None
        when = f"at {groups['when']}" if hour else groups["when"]
        moment = parse_due(when, now=now, tz=tz)
        if moment is None:
            return None
        given = "hour" if hour else due_parts(when)
        return Command(Intent.UPDATE, ref=ref, due_at=moment, due_given=given)
    if "clear" in groups:
        field = (
            "description" if groups["clear"].lower().startswith(("desc", "note", "det")) else None
        )
        return Command(Intent.UPDATE, ref=ref, clear=(field or "due_at",))
    if "level" in groups:
        up = groups["level"].lower() in {"raise", "increase", "bump up", "up"}
        return Command(Intent.UPDATE, ref=ref, priority="high" if up else "low")
    if groups.keys() & {"added", "removed"}:
        added, removed = _tag_words(groups.get("added", "")), _tag_words(groups.get("removed", ""))
        if not added and not removed:
            return None
        return Command(Intent.UPDATE, ref=ref, added_tags=added, removed_tags=removed)
    value = _SAYING.sub("", groups["value"].strip(), count=1)
    target = _FIELD_NAMES.get(groups.get("field", "").lower())
    if groups.get("field") == "":  # "call it Buy whole milk": the field is the title
        target = "title"
    if "to_priority" in groups:
        target = "priority"
    if "moving" in groups and target is None:
        target = "due_at"  # "move the dentist to later": a move is in time, never a new title
    day = _DAY_OF_MONTH.fullmatch(value)
    if day is not None and target in {None, "due_at"}:
        moment = _day_of_month(int(day["day"]), now=now, tz=tz)
        return Command(Intent.UPDATE, ref=ref, due_at=moment) if moment else None
    said_due = target in {None, "due_at"} and value.lower().startswith("due ")
    if said_due:
        value, target = value[4:].strip(), "due_at"
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
            return Command(Intent.UPDATE, ref=ref, due_at=moment, due_given=due_parts(value))
        if said_due:
            # "make the report due after lunch": a due date asked for, in words the dates do
            # not read; read as anything else, it became a new task "Report due after lunch".
            return Command(Intent.CLARIFY, ref=ref, unread_when=value)
        if target == "due_at":
            return None
    if target == "tags":
        tags = _tag_words(value)
        return Command(Intent.UPDATE, ref=ref, tags=tags) if tags else None
    if target == "description":
        return Command(Intent.UPDATE, ref=ref, description=quoted or value)
    title = quoted or value.strip(" .!?")
    if not title:
        return None
    verb = groups.get("verb", "").lower()
    if (
        target is None
        and quoted is None
        and verb not in _RENAME_VERBS  # "rename task 3 to later" names the title it wants
        and (verb in {"set", "switch"} or _WHEN_ONLY.fullmatch(title))
    ):
        # "set the bill to paid", "change the dentist to yesterday": a state or a time the
        # agent cannot set, not a new title: ask which change is meant.
        return Command(Intent.CLARIFY, options=(Intent.UPDATE,))  # _build adds the sentence
    return Command(Intent.UPDATE, ref=ref, title=title[0].upper() + title[1:])


def _tag_words(text: str) -> tuple[str, ...]:
    """The tags a list names ("#home, work and errands"), each read as a new task's are."""
    words = [w.lstrip("#") for w in re.split(r"[\s,]+", text) if w and w.lower() != "and"]
    _, tags = _take_tags(" ".join(f"#{w}" for w in words if w))
    return tags


_RENAME_VERBS = frozenset({"rename", "retitle", "reword"})

# Which way a move by a span goes: "postpone", "back", "later" are later; "forward", "up",
# "earlier" earlier. "move the report a day" says neither, and a "push" with no other word is
# later. Words that disagree ("postpone it an hour earlier") are no reading.
_LATER_VERBS = frozenset(("postpone", "delay", "defer", "put off", "push back"))
_EARLIER_VERBS = frozenset(("bring forward",))
_LATER_WAYS = frozenset(("back", "out", "later"))
_EARLIER_WAYS = frozenset(("forward", "up", "earlier", "sooner"))


def _shift_sign(groups: dict[str, str]) -> int | None:
    """1 for a move later, -1 for one earlier, None when the words do not say which."""
    verb = " ".join(groups["shifting"].lower().split())
    ways = {w.lower() for w in (groups.get("way"), groups.get("way2")) if w}
    signs = {1 for w in ways if w in _LATER_WAYS} | {-1 for w in ways if w in _EARLIER_WAYS}
    if verb in _LATER_VERBS:
        signs.add(1)
    if verb in _EARLIER_VERBS:
        signs.add(-1)
    if not signs and verb in {"push", "bump"}:
        signs.add(1)
    return signs.pop() if len(signs) == 1 else None


# Words of a time that ``parse_due`` does not read: never a new title.
_WHEN_ONLY = re.compile(
    r"(?:the\s+|this\s+|next\s+|tomorrow\s+|end of\s+(?:the\s+)?)?(?:later|earlier|soon|"
    r"yesterday|weekend|morning|afternoon|evening|day|week|month|year|eod|eow|lunch|"
    r"after\s+\w+|before\s+\w+)|\d+(?:\s*(?:days?|weeks?|hours?|minutes?|mins?|h|d|w))?",
    re.IGNORECASE,
)


_BY_DAY_OF_MONTH = re.compile(
    r"\s(?:by|before|on|for)\s+the\s+(?P<day>\d{1,2})(?:st|nd|rd|th)$", re.IGNORECASE
)
_DAY_OF_MONTH = re.compile(
    r"(?:(?:on|by|for|before)\s+)?(?:the\s+)?(?P<day>\d{1,2})(?:st|nd|rd|th)", re.IGNORECASE
)


def _day_of_month(
    day: int, at: time | None = None, *, now: datetime, tz: ZoneInfo
) -> datetime | None:
    """ "the 20th": that day of this month (at ``at``, or ``on_day``: 09:00, later today), or
    of next month once it has passed."""
    local = now.astimezone(tz)
    for months in (0, 1):
        year, month = (
            local.year + (local.month + months - 1) // 12,
            (local.month + months - 1) % 12 + 1,
        )
        try:
            that_day = date(year, month, day)
        except ValueError:
            continue
        if that_day >= local.date():
            return on_day(that_day, at, now=local, tz=tz)
    return None


_TIME_WORDS = re.compile(
    r"\d\s*(?:am|pm|a\.m\.|p\.m\.)|\d:\d\d|\bat \d|\b(?:noon|midday|midnight|morning|afternoon|"
    r"evening|tonight|night|eod|end of (?:the )?day)\b",
    re.IGNORECASE,
)
_DATE_WORDS = re.compile(
    r"\b(?:today|tomorrow|tonight|yesterday|next|this|mon|tue|wed|thu|fri|sat|sun|jan|feb|mar|"
    r"apr|may|jun|jul|aug|sep|oct|nov|dec|week|month|(?<!of )(?<!of the )days?|weekend)|"
    r"\d(?:st|nd|rd|th)\b|"
    r"\d+[/.-]\d+",
    re.IGNORECASE,
)


def due_parts(words: str) -> str:
    """Which parts of a moment ``words`` name: "date", "time" or "both"."""
    time, date = _TIME_WORDS.search(words), _DATE_WORDS.search(words)
    if time and not date:
        return "time"
    if date and not time:
        return "date"
    return "both"


def _only_priority(value: str) -> bool:
    return re.fullmatch(_PRIORITY_VALUE, value.strip(), re.IGNORECASE) is not None


# --- lists -----------------------------------------------------------------------------------

_STATUS_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), value)
    for pattern, value in (
        (
            r"\b(?:done|finished|completed?) or not\b|\bor not\b|\bboth\b|\bdone and (?:not done|"
            r"undone|pending)\b|\bpending and (?:done|completed)\b|\bwhether",
            "either",
        ),
        (r"\ball\b|\beverything\b|\bevery task\b", "all"),
        (
            r"\b(?:pending|open|incomplete|unfinished|outstanding|remaining|left|to ?do|"
            r"not (?:yet )?(?:done|completed|finished)|undone|active|overdue|still have|"
            r"(?:aren't|are not|isn't|is not|haven't|have not|hasn't|not) (?:yet |been )?"
            r"(?:done|completed|finished|ticked off|checked off)|next|coming up|upcoming|"
            r"(?:need|have|got) to (?:get )?(?:do|done|finish)|on my plate|still (?:open|to do)|"
            r"late|behind|haven't i (?:done|finished|completed|ticked off)|have i not|remains?|"
            r"forgot|forgotten|coming up)\b",
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
    rf"(?P<q>[{OPEN_QUOTES}]?[\w\s'-]{{1,{_REF_MAX}}}?[{CLOSE_QUOTES}]?)"
    r"(?:\s+(?:in|on)\s+(?:them|it|the title))?$",
    re.IGNORECASE,
)


_ABOUT_TASKS = re.compile(
    rf"\b(?:{_TASK_WORD}|list|pending|completed?|done|finished|due|left|to ?do|overdue|priority|"
    r"urgent|important|open|outstanding|remaining|incomplete|unfinished|accomplished|"
    r"on my plate|agenda|everything|schedule|late|behind|do i have|have i got|i have on|"
    r"i've got on|i got on|what should i do|next|for today|for tomorrow|for this week|tagged|"
    r"coming up|remains?|remaining|forgot|forgotten|forget|history|still have|still got|"
    r"on (?:today|tonight|tomorrow|this week)|what'?s on)\b|#\w",
)


def _list(groups: dict[str, str], sentence: str, *, now: datetime, tz: ZoneInfo) -> Command | None:
    rest = groups.get("rest", groups.get("remind", ""))
    q = groups.get("q")
    if q is not None:
        words = _search_words(q)
        return Command(Intent.LIST, filters=ListFilters(q=words)) if words else None
    sentence, sort = _take_sort(sentence)
    folded = fold_case(sentence)
    about = "remind" in groups or _ABOUT_TASKS.search(folded) or _HISTORY.search(folded)
    if not about:
        return None  # "what is the weather?" is not a question about tasks

    status = "all"
    found_statuses = [value for pattern, value in _STATUS_WORDS if pattern.search(folded)]
    # "all my pending tasks" is pending: a specific status wins over "all".
    specific = [value for value in found_statuses if value != "all"]
    if specific and specific[0] != "either":
        status = specific[0]

    _, priority = _take_priority(sentence)
    tag_match = _TAG.search(sentence)
    tag = tag_match["tag"].lower() if tag_match else None
    if tag is None:
        tagged = _TAGGED_AS.search(folded)
        tag = tagged["tag"] if tagged else None
    search = _SEARCH.search(rest)
    q = _search_words(search["q"]) if search else None
    if (
        q is not None
        and tag is not None
        and re.fullmatch(rf"(?:the\s+)?(?:tag|label)s?\s+#?{re.escape(tag)}", q, re.IGNORECASE)
    ):
        q = None  # "with the tag work" is the tag, not a search

    if _HISTORY.search(folded):
        status = "completed"
    due_before = due_after = completed_after = completed_before = None
    if status == "completed" and not re.search(r"\bdue\b", folded):
        completed_after, completed_before = _done_window(folded, now=now, tz=tz)
    else:
        due_before, due_after = _due_window(sentence, now=now, tz=tz)
        if not found_statuses and (due_before or due_after):
            status = "pending"  # "what's due this week" asks what is left to do in it
    return Command(
        Intent.LIST,
        filters=ListFilters(
            status=status,
            priority=priority,
            tag=tag,
            q=q,
            due_before=due_before,
            due_after=due_after,
            completed_after=completed_after,
            completed_before=completed_before,
            sort=sort,
        ),
        count=_COUNT.search(folded) is not None,
    )


# "sorted by due date", "by priority": the order a listing is asked for.
_SORT_BY = re.compile(
    r"\b(?:(?:sort|sorted|order|ordered|arranged?)\s+)?by\s+(?:the\s+|their\s+)?"
    r"(?:(?P<due>due(?:\s+dates?|\s+times?)?|deadlines?|dates?)|(?P<priority>priority|priorities|"
    r"urgency|importance)|(?P<title>titles?|names?|alphabet|alphabetically))\b"
)


def _take_sort(sentence: str) -> tuple[str, str | None]:
    """``sentence`` without "sorted by due date" or "by priority", and the list_tasks
    ``sort`` it asks for."""
    found = _SORT_BY.search(fold_case(sentence))
    if found is None:
        return sentence, None
    sort = next(name for name in ("due", "priority", "title") if found[name])
    return _without(sentence, found.start(), found.end()), sort


_TAGGED_AS = re.compile(
    r"\b(?:tagged|labell?ed|with the tag|under)\s+(?:as\s+|with\s+)?(?P<tag>[a-z][\w-]*)"
)

# "what did I finish", "what have I done", "what did I get done": questions about the past.
_HISTORY = re.compile(
    r"\b(?:did i|have i|i've|i have|i did|i got|did we|have we) (?:(?!to )\w+ )?(?:do|done|finish|"
    r"finished|"
    r"complete|completed|accomplish|accomplished|achieve|achieved|get done|got done|tick off|"
    r"ticked off|check off|checked off|cross off|crossed off)\b|\bso far\b|\bmy progress\b|"
    r"\bhistory\b"
)
_COUNT = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b|\bhow much\b")


def _done_window(
    folded: str, *, now: datetime, tz: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    """(completed_after, completed_before) for "today", "yesterday", "this week", "last
    week", "this month": local days, weeks from Monday."""
    local = now.astimezone(tz)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    monday = today - local.weekday() * day
    if re.search(r"\btoday\b", folded):
        return today, None
    if re.search(r"\byesterday\b", folded):
        return today - day, today
    if re.search(r"\b(?:this|the past|the last|in the last) week\b", folded):
        return monday, None
    if re.search(r"\blast week\b", folded):
        return monday - 7 * day, monday
    if re.search(r"\bthis month\b", folded):
        return today.replace(day=1), None
    on_day = re.search(r"\bon (?:last )?(?P<day>mon|tues|wednes|thurs|fri|satur|sun)day\b", folded)
    if on_day is not None:
        names = ("mon", "tues", "wednes", "thurs", "fri", "satur", "sun")
        back = (local.weekday() - names.index(on_day["day"])) % 7
        return today - back * day, today - (back - 1) * day
    since = re.search(
        r"\bsince (?:last )?(?P<day>mon|tues|wednes|thurs|fri|satur|sun)day\b", folded
    )
    if since is not None:
        names = ("mon", "tues", "wednes", "thurs", "fri", "satur", "sun")
        back = (local.weekday() - names.index(since["day"])) % 7
        return today - back * day, None
    return None, None


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
    window = (
        re.search(r"\bdue\s+(?P<when>.+)$", lowered)
        or re.search(r"\b(?P<when>(?:before|by|until) .+)$", lowered)
        or re.search(
            r"\b(?:for|on)\s+(?P<when>(?:mon|tues|wednes|thurs|fri|satur|sun)day|today|tomorrow)\b",
            lowered,
        )
    )
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
        if moment is not None and due_parts(before["date"]) == "date":
            # A day without a time: before that day begins, whatever hour its date would
            # be given for a new task (``on_day``).
            moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return (moment, None) if moment else (None, None)
    moment = parse_due(when, now=now, tz=tz)
    if moment is not None:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start + day, start
    return None, None


_COMMAND_START = re.compile(
    r"^(?:see|view|show|list|display|check|add|create|delete|remove|cancel|mark|complete|finish|"
    r"redo|reopen|undo|uncheck|unmark|"
    r"change|update|rename|edit|move|reschedule|know what|find|search)\b",
    re.IGNORECASE,
)


def _starts_with_command(text: str) -> bool:
    return _COMMAND_START.match(text.strip()) is not None
