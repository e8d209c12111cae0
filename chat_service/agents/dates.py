"""Due dates in everyday English, read in the user's time zone.

``find_due(text, now=..., tz=...)`` finds the first date phrase in ``text`` ("tomorrow",
"next Monday at 5pm", "on Dec 3", "in 2 days", "tonight") and returns the moment it means plus
the span of text it used, so the caller can cut the phrase out of a task title. Rules:

- a weekday ("monday", "next monday", "on monday") is its next occurrence after today; "friday
  after next" and "a week from friday" the one a week later ("a week from tomorrow" too). A
  short name ("sat", "tue") said alone must end the text ("call mom sat"), and "sun" and
  "wed", everyday words too, need a word before them ("on sun"); after "the", "a", "my", an
  apostrophe, in capitals ("the SAT", "c'mon") or as the whole text it is a word;
- a month and day that already passed this year is next year's;
- a date in numbers ("12/25", "25/12", "12/25/2026") is month/day or day/month: a number
  over 12 is the day, and when both could be the month the user's time zone says which comes
  first (``month_first``: month/day in the United States' zones, day/month elsewhere); the
  reply says the day it was read as. Without a year nor a word before it ("on", "due", "by")
  it must end the text, so "buy 1/2 gallon of milk" has no date, and not follow a word that
  counts ("chapter 3/4", "score was 3/4"); next to ":" or "-" ("16:9/4", "12/20-12/27") it is
  no date;
- a date without a time means ``DEFAULT_TIME`` (9:00) local time, but today once that has
  passed ``END_OF_DAY``, then ``LAST_MINUTE`` (``on_day``: nothing said to be due today is due
  in the past); "tonight" is 20:00, or ``LAST_MINUTE`` once 20:00 has passed;
- "end of day" ("by end of day friday", "today eod") is ``END_OF_DAY`` (17:00), a time like
  any other;
- an hour from 1 to 7 without am/pm ("at 5", "3:30") is the afternoon, unless written with a
  leading zero ("05:30");
- an hour from 8 to 11 without am/pm (nor a leading zero) is the evening with "tonight",
  "evening" or "night" ("tonight at 9" is 21:00), and on today once it has passed, when the
  evening hour has not ("today at 9" said at 14:30 is 21:00);
- a time without a date is today, or tomorrow when that time has already passed.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.timezones import local_or_as_given

DEFAULT_TIME = time(9, 0)
TONIGHT = time(20, 0)
EVENING = time(19, 0)
# The end of a working day, as task apps read "by end of day" and "eod".
END_OF_DAY = time(17, 0)
# "midnight", and today's last time for a task due today without a time once 17:00 has passed.
LAST_MINUTE = time(23, 59)

WEEKDAYS = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tue": 1,
    "tues": 1,
    "wednesday": 2,
    "wed": 2,
    "thursday": 3,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}
MONTHS = {
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sep": 9,
    "sept": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}
UNITS = {"minute": "minutes", "min": "minutes", "hour": "hours", "day": "days", "week": "weeks"}
NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}

_WEEKDAY = "|".join(sorted(WEEKDAYS, key=len, reverse=True))
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_NUMBER = r"\d{1,3}|" + "|".join(NUMBER_WORDS)
_AMPM = r"(?:am|pm|a\.m\.|p\.m\.)"
# A time needs a marker ("at", "@", "by"), minutes or am/pm: "Dec 3 2026" has no time in it.
_EOD = r"(?:end\s+of\s+(?:the\s+)?day|eod)"
# After a bare "end of day" only a day may follow: an "end of day report" is a title.
_DAY_AFTER = rf"(?:on|today|tonight|tomorrow|next|this|coming|{_WEEKDAY})\b"
_TIME = (
    r"(?P<time>(?:(?:at|@|by)\s*)?(?:noon|midnight)"
    rf"|(?:at|by|before)\s+(?:the\s+)?{_EOD}"
    rf"|(?:the\s+)?{_EOD}(?!\s+(?!{_DAY_AFTER})\w)"
    rf"|(?:at|@|by)\s*\d{{1,2}}(?::\d{{2}})?\s*{_AMPM}?"
    rf"|\d{{1,2}}:\d{{2}}\s*{_AMPM}?"
    rf"|\d{{1,2}}\s*{_AMPM})(?![\w:])"
)
_DAY_PREFIX = r"(?:(?:due|by|on|for|before|until)\s+)?"
# "a week from friday", "two weeks from tomorrow": that day, weeks later.
_WEEKS_FROM = rf"(?:(?P<weeks>{_NUMBER})\s+weeks?\s+from\s+)?"

# "friday after next", "monday after next week": a week after the next one.
_AFTER_NEXT = r"(?P<after_next>\s+after\s+next(?P<after_week>\s+week)?\b)"
# "the friday after next": "the" only before a day said with "after next".
_THE_AFTER_NEXT = r"the\s+(?=\w+\.?\s+after\s+next\b)"

# Capital ASCII letters to small ones and nothing else, so every position stays where it was.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@functools.lru_cache(maxsize=16)
def fold_case(text: str) -> str:
    """``text`` with its ASCII capitals in lower case, the same length: the patterns that only
    look for words are case-sensitive (two to three times quicker than ``IGNORECASE`` over a
    long message) and read this, and a span found in it is the same span of ``text``."""
    return text.translate(_ASCII_LOWER)


# Where dates in numbers are written month first ("12/25"): the United States, its
# territories, and the Philippines. Everywhere else ("25/12") the day comes first.
_MONTH_FIRST_ZONES = frozenset(
    (
        "America/New_York",
        "America/Detroit",
        "America/Chicago",
        "America/Menominee",
        "America/Denver",
        "America/Boise",
        "America/Phoenix",
        "America/Los_Angeles",
        "America/Anchorage",
        "America/Juneau",
        "America/Sitka",
        "America/Metlakatla",
        "America/Yakutat",
        "America/Nome",
        "America/Adak",
        "Pacific/Honolulu",
        # Older names of the same zones.
        "America/Fort_Wayne",
        "America/Indianapolis",
        "America/Knox_IN",
        "America/Louisville",
        "America/Atka",
        "America/Shiprock",
        "Navajo",
        "EST5EDT",
        "CST6CDT",
        "MST7MDT",
        "PST8PDT",
        # Territories.
        "America/Puerto_Rico",
        "America/St_Thomas",
        "America/Virgin",
        "Pacific/Guam",
        "Pacific/Saipan",
        "Pacific/Pago_Pago",
        "Pacific/Samoa",
        "Asia/Manila",
    )
)
_MONTH_FIRST_AREAS = ("US/", "America/Indiana/", "America/Kentucky/", "America/North_Dakota/")


def month_first(tz: ZoneInfo) -> bool:
    """Whether dates in numbers are written month first where ``tz`` is ("12/25")."""
    key = tz.key or ""
    return key in _MONTH_FIRST_ZONES or key.startswith(_MONTH_FIRST_AREAS)


_MONTH_CLUES = tuple(sorted({name[:3] for name in MONTHS}))
# A pattern runs only when one of its clues is in the text: a substring search is a fraction of
# the cost of trying a pattern at every word of a long message that names no date at all.
_CLUES: dict[str, tuple[str, ...]] = {
    "relative": ("in",),
    "iso": ("-",),
    "numeric": ("/",),
    "month_day": _MONTH_CLUES,
    "day_month": _MONTH_CLUES,
    "named_day": ("tod", "ton", "tom", "tmr", "this "),
    "weekday": tuple(sorted({name[:3] for name in WEEKDAYS})),
    "next_week": ("week", "month"),
    "time_only": (
        "noon",
        "midnight",
        "end",
        "eod",
        "at",
        "@",
        "by",
        ":",
        "am",
        "pm",
        "a.m",
        "p.m",
    ),
}

# Each entry: a name for the kind of phrase, its pattern, read from ``fold_case`` text, and the
# words of which every match holds at least one. The first pattern (in this order) that matches
# earliest in the text wins, so longer phrases come before their prefixes.
_PHRASES: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (name, re.compile(pattern), _CLUES[name])
    for name, pattern in (
        (
            "relative",
            rf"\b(?:due\s+)?in\s+(?P<count>{_NUMBER})\s+(?P<unit>minute|min|hour|day|week)s?\b",
        ),
        ("iso", rf"\b{_DAY_PREFIX}(?P<iso>\d{{4}}-\d{{2}}-\d{{2}})(?:\s+{_TIME})?"),
        # "12/25", "on 25/12", "12/25/2026 at 5pm": not a piece of a longer number ("1.5/2"),
        # a ratio ("16:9/4") or a span ("12/20-12/27").
        (
            "numeric",
            rf"\b{_DAY_PREFIX}(?<![\d/.:-])(?P<first>\d{{1,2}})/(?P<second>\d{{1,2}})"
            rf"(?:/(?P<year>\d{{4}}|\d{{2}}))?(?![\w/:-])(?:\s+{_TIME})?",
        ),
        (
            "month_day",
            rf"\b{_DAY_PREFIX}(?:the\s+)?(?P<month>{_MONTH})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?"
            rf"(?:,?\s+(?P<year>\d{{4}}))?\b(?:\s+{_TIME})?",
        ),
        (
            "day_month",
            rf"\b{_DAY_PREFIX}(?:the\s+)?(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?"
            rf"(?P<month>{_MONTH})\b\.?(?:,?\s+(?P<year>\d{{4}}))?(?:\s+{_TIME})?",
        ),
        (
            "named_day",
            rf"\b{_DAY_PREFIX}{_WEEKS_FROM}(?:the\s+)?(?P<named>day after tomorrow|today|tonight|"
            r"tomorrow|tmrw|"
            rf"tmr|this morning|this afternoon|this evening)\b"
            rf"(?:\s+(?:morning|afternoon|evening|night))?(?:\s+{_TIME})?",
        ),
        (
            "weekday",
            rf"\b{_DAY_PREFIX}{_WEEKS_FROM}(?:(?P<next>next|this|coming)\s+|{_THE_AFTER_NEXT})?"
            rf"(?P<weekday>{_WEEKDAY})\b\.?{_AFTER_NEXT}?"
            rf"(?:\s+(?P<part>morning|afternoon|evening|night))?(?:\s+{_TIME})?",
        ),
        ("next_week", r"\b(?:due\s+)?(?P<span>next week|this weekend|next weekend|next month)\b"),
        # A time, and the day after it: "at noon on thursday", "3pm tomorrow".
        (
            "time_only",
            rf"(?<!\w){_TIME}(?:\s+(?:on\s+)?(?:(?P<when>today|tonight|tomorrow)|"
            rf"(?:(?:next|this|coming)\s+|{_THE_AFTER_NEXT})?(?P<weekday>{_WEEKDAY})\b"
            rf"{_AFTER_NEXT}?)\b)?",
        ),
    )
)


@dataclass(frozen=True)
class DuePhrase:
    """A moment found in a text and where its phrase sits (``text[start:end]``)."""

    moment: datetime
    start: int
    end: int


def find_due(text: str, *, now: datetime, tz: ZoneInfo) -> DuePhrase | None:
    """The first date phrase in ``text``, or None. ``now`` is aware (any zone)."""
    local_now = now.astimezone(tz)
    folded = fold_case(text)
    best: DuePhrase | None = None
    for kind, pattern, clues in _PHRASES:
        if not any(clue in folded for clue in clues):
            continue
        for match in pattern.finditer(folded):
            moment = _resolve(kind, match, text, local_now, tz)
            if moment is None:
                continue
            if best is None or match.start() < best.start:
                best = DuePhrase(moment, match.start(), match.end())
            break
    return best


def parse_due(text: str, *, now: datetime, tz: ZoneInfo) -> datetime | None:
    """The moment ``text`` names when the whole text is one date phrase, else None."""
    stripped = text.strip().strip(".!?").strip()
    found = find_due(stripped, now=now, tz=tz)
    if found is None or found.start != 0 or stripped[found.end :].strip():
        return None
    return found.moment


def _resolve(
    kind: str, match: re.Match[str], text: str, now: datetime, tz: ZoneInfo
) -> datetime | None:
    moment = _moment(kind, match, text, now, tz)
    if (
        moment is not None
        and moment < now
        and moment.date() == now.date()
        and moment.hour < 12
        and _bare_morning(match)
        and _part_of_day(match.group(0)) is None  # "this morning at 9" is the morning's
    ):
        # "today at 9" said at 14:30: the evening's 9, while that is still ahead.
        evening = moment + timedelta(hours=12)
        if evening >= now:
            return evening
    return moment


def _moment(
    kind: str, match: re.Match[str], text: str, now: datetime, tz: ZoneInfo
) -> datetime | None:
    """The moment a match means; ``text`` is the matched text before ``fold_case``."""
    groups = match.groupdict()
    today = now.date()
    try:
        at = _time_of(match)
    except _NotATime:
        return None
    evening = _part_of_day(match.group(0)) in {EVENING, TONIGHT}
    if at is not None and evening and _bare_morning(match):
        at = at.replace(hour=at.hour + 12)  # "tonight at 9", "friday evening at 8"

    if kind == "relative":
        count = _number(groups["count"])
        unit = UNITS[groups["unit"].lower()]
        return now + timedelta(**{unit: count})

    if kind == "iso":
        try:
            day = date.fromisoformat(groups["iso"])
        except ValueError:
            return None
        return on_day(day, at, now=now, tz=tz)

    if kind in {"month_day", "day_month"}:
        month = MONTHS[groups["month"].lower().rstrip(".")]
        spelt = _calendar_day(month, int(groups["day"]), groups.get("year"), today)
        return None if spelt is None else on_day(spelt, at, now=now, tz=tz)

    if kind == "numeric":
        first, second = int(groups["first"]), int(groups["second"])
        said_alone = match.group(0)[:1].isdigit() and not groups.get("year")
        if said_alone and not _ends_text(match):
            return None  # "buy 1/2 gallon of milk": a number, not a day
        if said_alone and _after_quantity_word(match):
            return None  # "finish chapter 3/4", "score was 3/4": a fraction or a score
        if said_alone and (first, second) == (24, 7):
            return None  # "support 24/7": all the time; "on 24/7" is 24 July
        if first > 12 or (second <= 12 and not month_first(tz)):
            first, second = second, first  # day/month
        written = _calendar_day(first, second, groups.get("year"), today)
        return None if written is None else on_day(written, at, now=now, tz=tz)

    if kind == "named_day":
        named = groups["named"].lower()
        if named in {"today", "tonight"} or named.startswith("this "):
            day = today
        elif named == "day after tomorrow":
            day = today + timedelta(days=2)
        else:
            day = today + timedelta(days=1)
        day += timedelta(weeks=_number(groups["weeks"]) if groups.get("weeks") else 0)
        part = TONIGHT if named == "tonight" else _part_of_day(match.group(0))
        return on_day(day, at, now=now, tz=tz, default=part or DEFAULT_TIME)

    if kind == "weekday":
        word = groups["weekday"].lower()
        # "sun" or "wed" alone is too often an ordinary word; abbreviations need "on", "next"...
        # or to end the message ("call mom sat", "gym tue 6pm"), but for those two ("lie in the
        # sun", "get wed").
        said_alone = len(word) <= 4 and match.group(0).lower().split()[0] == word
        if said_alone and (
            word in _EVERYDAY_WORDS or not _ends_text(match) or _short_name_is_a_word(match, text)
        ):
            return None
        ahead = _days_to(WEEKDAYS[word], today, groups)
        # "a week from friday": weeks after it.
        ahead += 7 * (_number(groups["weeks"]) if groups.get("weeks") else 0)
        default = _part_of_day(groups.get("part") or "") or DEFAULT_TIME
        return _at(today + timedelta(days=ahead), at or default, tz)

    if kind == "next_week":
        span = groups["span"].lower()
        if span == "next week":
            day = today + timedelta(days=7 - today.weekday())
        elif span == "next month":
            day = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        else:
            ahead = (5 - today.weekday()) % 7
            if span == "next weekend" or (ahead == 0 and now.time() >= DEFAULT_TIME):
                ahead = ahead or 7
            day = today + timedelta(days=ahead)
        return _at(day, DEFAULT_TIME, tz)

    if kind == "time_only":
        assert at is not None
        when = (groups.get("when") or "").lower()
        day = today + timedelta(days=1) if when == "tomorrow" else today
        weekday = (groups.get("weekday") or "").lower()
        if weekday:
            day = today + timedelta(days=_days_to(WEEKDAYS[weekday], today, groups))
            when = weekday
        moment = _at(day, at, tz)
        if not when and moment <= now:
            moment = _at(today + timedelta(days=1), at, tz)
        return moment
    return None


def _ends_text(match: re.Match[str]) -> bool:
    """Whether nothing but spaces and end punctuation follow ``match``: a date said alone
    ("call mom sat", "pay rent 12/25") must end the text."""
    return _BLANK_TO_END.match(match.string, match.end()) is not None


def _days_to(target: int, today: date, groups: dict[str, str | None]) -> int:
    """Days from ``today`` to the weekday ``target``: its next occurrence, a week later
    "after next" ("friday after next"), or that day of the week after next week ("monday
    after next week")."""
    if groups.get("after_week"):
        return 7 - today.weekday() + 7 + target
    ahead = (target - today.weekday()) % 7 or 7
    return ahead + 7 * bool(groups.get("after_next"))


def _after_quantity_word(match: re.Match[str]) -> bool:
    """Whether the word before a match is one that counts ("chapter 3/4", "out of 3/4")."""
    start = match.start()
    before = match.string[max(0, start - _LONGEST_QUANTITY) : start].split()
    return bool(before) and before[-1] in _QUANTITY_WORDS


# Words after which numbers with a slash are a fraction, a part or a score, never a day.
_QUANTITY_WORDS = frozenset(
    (
        "chapter",
        "chapters",
        "ch",
        "page",
        "pages",
        "pg",
        "pp",
        "step",
        "steps",
        "part",
        "parts",
        "cup",
        "cups",
        "of",
        "was",
        "is",
        "score",
        "scored",
        "ratio",
        "version",
        "v",
        "rated",
        "level",
        "lesson",
        "episode",
        "ep",
        "season",
        "grade",
    )
)
# A window before a match as long as the longest quantity word and a space.
_LONGEST_QUANTITY = max(map(len, _QUANTITY_WORDS)) + 1


def _short_name_is_a_word(match: re.Match[str], text: str) -> bool:
    """Whether a short weekday name said alone at the end is a word instead: the whole text
    ("add sat" is a task "Sat"), after an article or "my" ("register for the SAT"; not after
    "Blythe"), after an apostrophe ("c'mon"), or one of the names that is a word in capitals
    in a text that has small letters ("study for SAT"; "call mom FRI" is a day)."""
    start = match.start()
    before = match.string[max(0, start - _BEFORE) : start]
    if not before.strip() or before.endswith(_APOSTROPHES):
        return True
    if _ARTICLE_BEFORE.search(match.string, max(0, start - _BEFORE), start):
        return True
    word = text[start : start + len(match.group("weekday"))]
    return word.lower() in _WORDS_IN_CAPITALS and word.isupper() and text != text.upper()


# An article or "my", a whole word, right before a short weekday name ("for the SAT").
_ARTICLE_BEFORE = re.compile(r"(?<!\S)(?:the|an?|my)\s+$")
_APOSTROPHES = ("'", "\u2019")
# How far before a short weekday name is looked at: the longest article, two spaces and more
# (a window, never a copy of the text).
_BEFORE = 8
# Short weekday names that are a word in capitals: "study for SAT".
_WORDS_IN_CAPITALS = frozenset(("sat",))
# Short names of a weekday that are everyday words too: never a day said alone.
_EVERYDAY_WORDS = frozenset(("sun", "wed"))
# Nothing but spaces and end punctuation up to the end of the text (a match, never a copy of
# the rest: a message may hold a thousand numbers with a slash).
_BLANK_TO_END = re.compile(r"[\s.,!?]*$")


def _calendar_day(month: int, day: int, year: str | None, today: date) -> date | None:
    """That day of ``year`` (two digits are this century's); without a year this year's, or
    next year's once it has passed. None when there is no such day."""
    number = today.year if year is None else int(year) + (2000 if len(year) == 2 else 0)
    try:
        found = date(number, month, day)
    except ValueError:
        return None
    if year is None and found < today:
        try:
            found = found.replace(year=number + 1)
        except ValueError:  # 29 February
            return None
    return found


_CLOCK = re.compile(
    rf"^(?:(?:at|@|by)\s*)?(?P<hour>\d{{1,2}})(?::(?P<minute>\d{{2}}))?\s*(?P<ampm>{_AMPM})?$"
)


class _NotATime(ValueError):
    """The phrase has a time that is no time of day ("at 25:00", "13pm")."""


def _time_of(match: re.Match[str]) -> time | None:
    """The time in the phrase, or None when it has none."""
    spoken = (match.groupdict().get("time") or "").lower().strip()
    if not spoken:
        return None
    if spoken.endswith("noon"):
        return time(12, 0)
    if spoken.endswith("midnight"):
        return LAST_MINUTE
    if spoken.endswith(("day", "eod")):  # "end of (the) day", "eod"
        return END_OF_DAY
    clock = _CLOCK.match(spoken)
    if clock is None:
        raise _NotATime(spoken)
    hour = int(clock["hour"])
    minute = int(clock["minute"] or 0)
    ampm = (clock["ampm"] or "").replace(".", "")
    if ampm:
        if not 1 <= hour <= 12:
            raise _NotATime(spoken)
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    elif 1 <= hour <= 7 and not clock["hour"].startswith("0"):
        # "at 5" and "at 3:30" mean the afternoon: hardly anyone plans a task for 5 in the
        # morning. "at 05:30" is a 24-hour time, as written.
        hour += 12
    if hour > 23 or minute > 59:
        raise _NotATime(spoken)
    return time(hour, minute)


def _bare_morning(match: re.Match[str]) -> bool:
    """Whether the phrase's time is an hour from 8 to 11 said without am/pm or a leading zero
    ("at 9", "10:30"): the morning's or the evening's."""
    clock = _CLOCK.match((match.groupdict().get("time") or "").lower().strip())
    return (
        clock is not None
        and not clock["ampm"]
        and not clock["hour"].startswith("0")
        and 8 <= int(clock["hour"]) <= 11
    )


def _part_of_day(phrase: str) -> time | None:
    lowered = phrase.lower()
    for word, at in (("morning", time(9)), ("afternoon", time(15)), ("evening", EVENING)):
        if word in lowered:
            return at
    if "night" in lowered:
        return TONIGHT
    return None


def _number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word.lower()]


def _at(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz)


def on_day(
    day: date, at: time | None, *, now: datetime, tz: ZoneInfo, default: time = DEFAULT_TIME
) -> datetime:
    """``day`` at ``at``; without a time at ``default`` (``DEFAULT_TIME``, or the part of the
    day said: "tonight"), but today at the first of it and the later of ``END_OF_DAY`` and
    ``LAST_MINUTE`` not yet past ("add today call mom" said at 16:00 is due at 17:00, not at
    09:00 in the past; "tonight" said at 23:30 at 23:59). ``now`` is in ``tz``."""
    if at is not None:
        return _at(day, at, tz)
    later = (END_OF_DAY, LAST_MINUTE) if day == now.date() else ()
    times = (default, *(each for each in later if each > default))
    moments = [_at(day, each, tz) for each in times]
    return next((moment for moment in moments if moment >= now), moments[-1])


def describe(moment: datetime, *, now: datetime, tz: ZoneInfo) -> str:
    """A short human form of a due moment: 'today at 17:00', 'Wed 3 Dec at 09:00', and the
    day alone for its last minute ('Wed 3 Dec'), as the web client says a date given without
    a time. A moment whose local time would leave the calendar (the end of 9999 in UTC, in a
    zone ahead of it) is said as it is written (the todo service's: in UTC)."""
    local = local_or_as_given(moment, tz)
    today = now.astimezone(tz).date()
    if local.date() == today:
        day = "today"
    elif local.date() == today + timedelta(days=1):
        day = "tomorrow"
    else:
        day = f"{local:%a} {local.day} {local:%b}"
        if local.year != today.year:
            day += f" {local.year}"
    if (local.hour, local.minute) == (LAST_MINUTE.hour, LAST_MINUTE.minute):
        return day
    return f"{day} at {local:%H:%M}"
