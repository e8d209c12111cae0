"""The rule-based parser stays linear-time: a pathological corpus of the longest messages.

One chat service process serves every user on one event loop, so a message that makes a regular
expression backtrack quadratically stalls chat for everyone. The corpus is the kinds of text
that do that to patterns anchored at the end or starting with a repeated class: long runs of
punctuation, spaces, digits, quotes, polite words and emoji, each filling a message of the
largest accepted size, alone and behind the command words that send it down each path of the
parser (``tests/support/parser_corpus.py``, which ``bench/chat.py --parser-only`` times too).
"""

from __future__ import annotations

import time

import pytest

from chat_service.agents.language import Intent, TaskRef, read_ref, understand
from chat_service.agents.rules import asks_to_change_recurrence
from chat_service.schemas import MESSAGE_MAX
from tests.support.parser_corpus import (
    NOW,
    PARIS,
    PREFIXES,
    RUNS,
    SUFFIXES,
    parse_seconds,
    pathological_corpus,
)

# Generous for a noisy shared machine: the quadratic cases took 0.1-9 s of CPU, a linear parse
# of the longest message takes a few milliseconds.
BOUND_SECONDS = 0.05


def test_the_corpus_holds_messages_of_the_largest_size() -> None:
    corpus = pathological_corpus()
    assert len(corpus) == len(RUNS) * len(PREFIXES) * len(SUFFIXES)
    longest_run = max(map(len, RUNS))
    assert all(MESSAGE_MAX - longest_run < len(text) <= MESSAGE_MAX for text in corpus)


@pytest.mark.parametrize(
    "text",
    [
        "," * 3999 + "x",
        ", " * 2000,
        "." * 3999 + "x",
        "add x" + " please," * 499,
        "add x" + ", please" * 499,
        "add x " + "!" * 3994,
    ],
    ids=["commas", "comma-spaces", "dots", "please-commas", "comma-please", "bangs"],
)
def test_the_reported_quadratic_messages_parse_quickly(text: str) -> None:
    assert parse_seconds(text) < BOUND_SECONDS


def test_every_pathological_message_parses_within_the_bound() -> None:
    slow = {}
    for text in pathological_corpus():
        seconds = parse_seconds(text, runs=1)
        if seconds >= BOUND_SECONDS:
            seconds = parse_seconds(text)  # measured again: one slow run may be the machine
        if seconds >= BOUND_SECONDS:
            slow[text[:20] + "..." + text[-12:]] = round(seconds, 3)
    assert slow == {}


@pytest.mark.parametrize(
    "text", ["x" + " " * 3998 + "y", "task" + " \t" * 1998, "1 " + " " * 3990 + "and 2"]
)
def test_a_raw_reference_with_long_runs_of_spaces_reads_quickly(text: str) -> None:
    # The answer to "which one?" is read as a reference straight from the message.
    start = time.thread_time()
    ref = read_ref(text)
    assert time.thread_time() - start < BOUND_SECONDS
    assert ref is not None


def test_a_raw_reference_still_reads_its_words() -> None:
    assert read_ref("  the   meeting   task ") == TaskRef(title="meeting")
    assert read_ref("task  3   and   4") == TaskRef(ids=(3, 4))


@pytest.mark.parametrize(
    ("text", "intent", "title"),
    [
        ("add buy milk, please", Intent.ADD, "Buy milk"),
        ("add buy milk please thanks!!", Intent.ADD, "Buy milk"),
        ("add buy milk for me now.", Intent.ADD, "Buy milk"),
        ("add call mom asap", Intent.ADD, "Call mom"),
        ("add buy snow tyres", Intent.ADD, "Buy snow tyres"),
        ("add buy milk" + "!" * 3000, Intent.ADD, "Buy milk"),
        ("add buy milk" + ", please" * 400, Intent.ADD, "Buy milk"),
    ],
)
def test_polite_endings_are_still_trimmed(text: str, intent: Intent, title: str) -> None:
    command = understand(text, now=NOW, tz=PARIS)
    assert (command.intent, command.title) == (intent, title)


def test_the_agent_reads_a_request_to_change_a_repetition_in_linear_time() -> None:
    slow = {}
    for text in pathological_corpus():
        start = time.thread_time()
        asks_to_change_recurrence(text)
        seconds = time.thread_time() - start
        if seconds >= BOUND_SECONDS:
            slow[text[:20] + "..." + text[-12:]] = round(seconds, 3)
    assert slow == {}
    assert asks_to_change_recurrence("make task 3 weekly")
    assert asks_to_change_recurrence("set the trash to repeat weekly")


@pytest.mark.parametrize(
    "text",
    [
        # Edits of a task whose name says it repeats: no change of its repetition.
        "change my recurring gym to friday",
        "make the repeating one high priority",
        "set the recurring meeting to 3pm",
        # Additions that say how the new task repeats.
        "add gym that should recur weekly",
        "add pay rent which should repeat monthly",
        "I need to pay rent and it should repeat monthly",
        "don't forget recurring payments",
        "we should repeat the survey",
        "pay rent and water plants should repeat",
    ],
)
def test_a_message_that_changes_no_repetition_is_not_declined_as_one(text: str) -> None:
    assert not asks_to_change_recurrence(text)


@pytest.mark.parametrize(
    "text",
    [
        "make it weekly",
        "make the trash task repeat every monday",
        "set the trash to repeat weekly",
        "change the trash to every tuesday",
        "the trash should repeat every monday",
        "my gym should recur weekly",
        "gym should repeat weekly",
        "trash needs to repeat every monday",
        "water plants has to recur every week",
        "stop repeating the trash task",
        "stop the trash from repeating",
        "set the trash to recurring",
    ],
)
def test_a_request_to_change_a_repetition_is_read_as_one(text: str) -> None:
    assert asks_to_change_recurrence(text)


@pytest.mark.parametrize(
    "text",
    [
        "stop gym from repeating",
        "Stop gym from repeating!",
        "can you stop water plants from recurring?",
        "stop gym from repeating every week",
        "stop gym from repeating anymore",
        "stop gym from recurring weekly",
    ],
)
def test_a_bare_task_name_stopped_from_repeating_is_read_as_a_change_of_repetition(
    text: str,
) -> None:
    """As "stop the gym from repeating" and "gym should repeat weekly" are."""
    assert asks_to_change_recurrence(text)


@pytest.mark.parametrize(
    "text",
    [
        # Someone kept from repeating something: a person, or a thing repeated after the verb.
        "stop people from repeating rumours",
        "stop me from repeating myself",
        "stop him from repeating",
        "stop everyone from repeating the same question",
        "stop kids from repeating the same mistakes",
        # Other things stopped.
        "stop gym reminders",
        "stop reminding me about gym",
        "stop gym from reminding me",
        "stop procrastinating",
    ],
)
def test_a_sentence_that_stops_something_else_is_no_change_of_repetition(text: str) -> None:
    assert not asks_to_change_recurrence(text)
