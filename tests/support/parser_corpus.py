"""Messages that would make the rule-based parser backtrack, were it not linear-time.

Regular expressions anchored at the end or starting with a repeated class go quadratic on long
runs of punctuation, spaces, digits, quotes, polite words and emoji. The corpus fills messages
of the largest accepted size with each run, alone and behind the command words that send it
down each path of the parser. ``tests/chat/test_parser_time.py`` bounds the time of every one;
``bench/chat.py --parser-only`` reports the worst.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from chat_service.agents.language import understand
from chat_service.schemas import MESSAGE_MAX

# The parser reads relative dates against a fixed Friday afternoon, in a zone with DST.
NOW = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")

RUNS = [
    # punctuation
    ",",
    ", ",
    ".",
    ". ",
    "!",
    "?",
    "-",
    ":",
    "x.",
    # spaces (collapsed on the way in, but also inside quotes and between words)
    " ",
    "\t ",
    # digits and numbers
    "1",
    "1,",
    "1 ",
    "1 and ",
    "#1",
    "1/",
    "1/2 ",
    "12:",
    # quotes, straight and typographic
    '"',
    "'",
    "\u201c",
    "\u201d",
    "'s ",
    # polite words
    " please",
    " please,",
    ", please",
    " thanks",
    " thank you",
    " for me",
    " now",
    # emoji
    "\U0001f600",
    "\U0001f600 ",
    # words the parser looks for
    "no ",
    "oops, ",
    "#a ",
    "a ",
    "by ",
    "with ",
    "at 5pm ",
    "task ",
    "every monday and ",
    "mon, ",
    "stop gym from repeating ",
    "end of day ",
    "by eod ",
    "tag #a, ",
    "tag task 1 a ",
    "untag a and ",
    "remove the tag a from ",
    "remove the a tag off ",
    "bump a to high ",
    "raise a up to ",
    "gym every monday and call ",
    "gym every monday and thursday, ",
    "every 3 ",
    "every other ",
    "twice a ",
    "2 times per ",
    "each week ",
    "on the 3rd at ",
    "tonight at 9 ",
    "sorted by the ",
    "by ",
]
PREFIXES = ["", "add ", "delete ", "mark ", "change ", "remind me to ", "show my tasks "]
# " + isn't x" fails late twice: on the "+" that no search phrase holds, and on an "isn't"
# without a word for done after it.
SUFFIXES = ["", " to x", " tomorrow", " + isn't x"]


def pathological_corpus() -> list[str]:
    """Every run repeated to fill a message of ``MESSAGE_MAX`` characters, behind each prefix
    and before each suffix."""
    corpus = []
    for run in RUNS:
        for prefix in PREFIXES:
            for suffix in SUFFIXES:
                count = (MESSAGE_MAX - len(prefix) - len(suffix)) // len(run)
                corpus.append(prefix + run * count + suffix)
    return corpus


def parse_seconds(text: str, *, runs: int = 3) -> float:
    """The parser's CPU time for ``text``, per parse over ``runs`` parses: the thread's own
    time, so other work on a busy machine does not count (its clock may tick coarsely, hence
    the mean of several runs)."""
    start = time.thread_time()
    for _ in range(runs):
        understand(text, now=NOW, tz=PARIS)
    return (time.thread_time() - start) / runs
