"""The rule-based agent's language understanding and date reading, table by table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chat_service.agents.dates import describe, find_due, parse_due
from chat_service.agents.language import (
    Intent,
    ListFilters,
    Reminder,
    TaskRef,
    clean,
    read_ref,
    understand,
)
from chat_service.agents.rules import search_term, stem

# Friday 27 November 2026, 15:30 in Paris.
NOW = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def at(day: int, hour: int, minute: int = 0, *, month: int = 11, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def check(text: str, intent: Intent, **expected: Any) -> None:
    command = understand(text, now=NOW, tz=PARIS)
    assert command.intent is intent, (text, command)
    for name, value in expected.items():
        assert getattr(command, name) == value, (text, name, command)


# The Phase III examples and what each must mean.
PHASE_III = [
    ("Add a task to buy groceries", Intent.ADD, {"title": "Buy groceries"}),
    ("Show me all my tasks", Intent.LIST, {"filters": ListFilters(status="all")}),
    ("What's pending?", Intent.LIST, {"filters": ListFilters(status="pending")}),
    ("Mark task 3 as complete", Intent.COMPLETE, {"ref": TaskRef(ids=(3,))}),
    ("Delete the meeting task", Intent.DELETE, {"ref": TaskRef(title="meeting")}),
    (
        "Change task 1 to 'Call mom tonight'",
        Intent.UPDATE,
        {"ref": TaskRef(ids=(1,)), "title": "Call mom tonight", "due_at": None},
    ),
    ("I need to remember to pay bills", Intent.ADD, {"title": "Pay bills"}),
    ("What have I completed?", Intent.LIST, {"filters": ListFilters(status="completed")}),
]

ADDING = [
    ("add buy milk", {"title": "Buy milk"}),
    ("Please add 'Call mom' to my list", {"title": "Call mom"}),
    ("Please add “Call mom” to my list", {"title": "Call mom"}),
    ("create a new task called water the plants", {"title": "Water the plants"}),
    ("new task: renew passport", {"title": "Renew passport"}),
    (
        "remind me to call the dentist on Friday",
        {"title": "Call the dentist", "due_at": at(4, 9, month=12)},
    ),
    ("don't let me forget to feed the cat", {"title": "Feed the cat"}),
    ("I need to buy a birthday present", {"title": "Buy a birthday present"}),
    (
        "Add buy milk tomorrow at 5pm #errands urgent",
        {"title": "Buy milk", "due_at": at(28, 17), "tags": ("errands",), "priority": "high"},
    ),
    (
        "add a high priority task to finish the report by next Monday at 5pm",
        {"title": "Finish the report", "priority": "high", "due_at": at(30, 17)},
    ),
    ("add low priority: clean the garage", {"title": "Clean the garage", "priority": "low"}),
    (
        "add pay rent on Dec 3 #home #bills",
        {"due_at": at(3, 9, month=12), "tags": ("home", "bills")},
    ),
    ("add water plants every week", {"title": "Water plants", "recurrence": "weekly"}),
    (
        "new task: take out the trash every monday",
        {"title": "Take out the trash", "recurrence": "weekly", "due_at": at(30, 9)},
    ),
    (
        "put 'submit timesheet' on my list for every friday",
        {"title": "submit timesheet", "recurrence": "weekly", "due_at": at(4, 9, month=12)},
    ),
    (
        "pay rent on the 1st of every month",
        {"title": "Pay rent", "recurrence": "monthly", "due_at": at(1, 9, month=12)},
    ),
    (
        "add water the plants on the 15th of each month",
        {"title": "Water the plants", "recurrence": "monthly", "due_at": at(15, 9, month=12)},
    ),
    (
        "add stand-up daily at 9:30",
        {"title": "Stand-up", "recurrence": "daily", "due_at": at(28, 9, 30)},
    ),
    (
        "add dentist appointment with description bring the insurance card",
        {"title": "Dentist appointment", "description": "bring the insurance card"},
    ),
    ("add call mom tonight", {"title": "Call mom", "due_at": at(27, 20)}),
    ("add submit taxes tagged finance", {"title": "Submit taxes", "tags": ("finance",)}),
    ("can you add milk please", {"title": "Milk"}),
    ("Add a task", {"title": None}),
]

LISTING = [
    ("list my tasks", ListFilters()),
    ("what's on my list?", ListFilters()),
    ("can you please show my pending tasks", ListFilters(status="pending")),
    ("What's left to do?", ListFilters(status="pending")),
    ("show completed tasks", ListFilters(status="completed")),
    ("show me all my pending tasks", ListFilters(status="pending")),
    ("list high priority tasks", ListFilters(priority="high")),
    ("any urgent tasks?", ListFilters(priority="high")),
    ("show me my #work tasks", ListFilters(tag="work")),
    ("search for dentist", ListFilters(q="dentist")),
    ("find tasks about taxes", ListFilters(q="taxes")),
    ("show tasks mentioning passport", ListFilters(q="passport")),
    ("I want to see my tasks", ListFilters()),
    (
        "what's due tomorrow?",
        ListFilters(status="pending", due_after=at(28, 0), due_before=at(29, 0)),
    ),
    (
        "what do I have to do today?",
        ListFilters(status="pending", due_after=at(27, 0), due_before=at(28, 0)),
    ),
    ("any overdue tasks?", ListFilters(status="pending", due_before=at(27, 15, 30))),
    (
        "tasks due this week",
        ListFilters(status="pending", due_after=at(27, 0), due_before=at(30, 0)),
    ),
    ("show my tasks sorted by due date", ListFilters(sort="due")),
    ("list my #work tasks by priority", ListFilters(tag="work", sort="priority")),
    ("show tasks alphabetically by title", ListFilters(sort="title")),
    (
        "what's due this week by priority",
        ListFilters(status="pending", due_after=at(27, 0), due_before=at(30, 0), sort="priority"),
    ),
    (
        "all tasks due this week",
        ListFilters(status="all", due_after=at(27, 0), due_before=at(30, 0)),
    ),
]

CHANGING = [
    ("complete task 7", Intent.COMPLETE, {"ref": TaskRef(ids=(7,))}),
    ("mark #4 done", Intent.COMPLETE, {"ref": TaskRef(ids=(4,))}),
    ("task 3 is done", Intent.COMPLETE, {"ref": TaskRef(ids=(3,))}),
    ("I finished the groceries task", Intent.COMPLETE, {"ref": TaskRef(title="groceries")}),
    ("done with the report", Intent.COMPLETE, {"ref": TaskRef(title="report")}),
    ("complete tasks 3 and 4", Intent.COMPLETE, {"ref": TaskRef(ids=(3, 4))}),
    ("mark that done", Intent.COMPLETE, {"ref": TaskRef(pronoun=True)}),
    ("set task 2 to done", Intent.COMPLETE, {"ref": TaskRef(ids=(2,))}),
    ("delete it", Intent.DELETE, {"ref": TaskRef(pronoun=True)}),
    ("remove task number 12", Intent.DELETE, {"ref": TaskRef(ids=(12,))}),
    (
        "cancel the dentist appointment",
        Intent.DELETE,
        {"ref": TaskRef(title="dentist appointment")},
    ),
    ("delete everything", Intent.DELETE, {"ref": TaskRef(bulk=True)}),
    ("mark task 5 as not done", Intent.REOPEN, {"ref": TaskRef(ids=(5,))}),
    ("rename task 2 to Buy oat milk", Intent.UPDATE, {"title": "Buy oat milk"}),
    ("update task 3: call the bank", Intent.UPDATE, {"title": "Call the bank"}),
    (
        "change the description of task 2 to bring receipts",
        Intent.UPDATE,
        {"description": "bring receipts", "title": None},
    ),
    ("make task 2 high priority", Intent.UPDATE, {"priority": "high", "title": None}),
    ("make it urgent", Intent.UPDATE, {"ref": TaskRef(pronoun=True), "priority": "high"}),
    ("set task 4 priority to low", Intent.UPDATE, {"priority": "low"}),
    ("move task 3 to tomorrow", Intent.UPDATE, {"due_at": at(28, 9), "title": None}),
    ("task 3 is due friday at 4pm", Intent.UPDATE, {"due_at": at(4, 16, month=12)}),
    ("change the due date of task 6 to Dec 24", Intent.UPDATE, {"due_at": at(24, 9, month=12)}),
    ("set the tags of task 1 to #home, #chores", Intent.UPDATE, {"tags": ("home", "chores")}),
    # A tag joins the task's own or leaves them; only "set the tags" replaces them.
    ("tag task 12 #home", Intent.UPDATE, {"added_tags": ("home",), "tags": ()}),
    (
        "tag the milk task with groceries and food",
        Intent.UPDATE,
        {"ref": TaskRef(title="milk"), "added_tags": ("groceries", "food")},
    ),
    ("label task 2 errands", Intent.UPDATE, {"added_tags": ("errands",)}),
    ("add the tags work, home to it", Intent.UPDATE, {"added_tags": ("work", "home")}),
    ("untag task 3 #home", Intent.UPDATE, {"removed_tags": ("home",), "tags": ()}),
    ("remove the tag home from task 3", Intent.UPDATE, {"removed_tags": ("home",)}),
    (
        "take the #home tag off the milk task",
        Intent.UPDATE,
        {"ref": TaskRef(title="milk"), "removed_tags": ("home",)},
    ),
    ("set the tags of task 1 to home and work", Intent.UPDATE, {"tags": ("home", "work")}),
    # A priority after "bump/raise/lower/drop ... to"; a day after it is a move.
    (
        "bump the dentist to high priority",
        Intent.UPDATE,
        {"ref": TaskRef(title="dentist"), "priority": "high", "due_at": None},
    ),
    ("drop the report to low priority", Intent.UPDATE, {"priority": "low"}),
    ("lower task 3 down to normal", Intent.UPDATE, {"priority": "medium"}),
    ("bump up the gym to urgent", Intent.UPDATE, {"ref": TaskRef(title="gym"), "priority": "high"}),
    (
        "bump the meeting to friday",
        Intent.UPDATE,
        {"ref": TaskRef(title="meeting"), "due_at": at(4, 9, month=12), "priority": None},
    ),
    # A trailing "instead", "then" or "please" changes nothing.
    (
        "make task 3 4pm instead",
        Intent.UPDATE,
        {"ref": TaskRef(ids=(3,)), "due_at": at(27, 16), "due_given": "time", "title": None},
    ),
    ("move task 3 to tomorrow then", Intent.UPDATE, {"due_at": at(28, 9), "title": None}),
    ("make it 4pm instead please", Intent.UPDATE, {"ref": TaskRef(pronoun=True)}),
]

SMALL_TALK = [
    ("hi", Intent.GREETING),
    ("Hello there!", Intent.GREETING),
    ("good morning", Intent.GREETING),
    ("what can you do?", Intent.HELP),
    ("help", Intent.HELP),
    ("thanks!", Intent.THANKS),
    ("thank you so much", Intent.THANKS),
    ("what is the weather like", Intent.UNKNOWN),
    ("asdf qwerty", Intent.UNKNOWN),
    ("", Intent.UNKNOWN),
    ("the second one", Intent.ANSWER),
    ("4", Intent.ANSWER),
    ("task 12", Intent.ANSWER),
]


@pytest.mark.parametrize(("text", "intent", "expected"), PHASE_III)
def test_phase_three_examples(text: str, intent: Intent, expected: dict[str, Any]) -> None:
    check(text, intent, **expected)


@pytest.mark.parametrize(("text", "expected"), ADDING)
def test_adding(text: str, expected: dict[str, Any]) -> None:
    check(text, Intent.ADD, **expected)


@pytest.mark.parametrize(("text", "filters"), LISTING)
def test_listing(text: str, filters: ListFilters) -> None:
    check(text, Intent.LIST, filters=filters)


@pytest.mark.parametrize(("text", "intent", "expected"), CHANGING)
def test_changing(text: str, intent: Intent, expected: dict[str, Any]) -> None:
    check(text, intent, **expected)


@pytest.mark.parametrize(("text", "intent"), SMALL_TALK)
def test_small_talk_and_nonsense(text: str, intent: Intent) -> None:
    check(text, intent)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("task 3", TaskRef(ids=(3,))),
        ("#3", TaskRef(ids=(3,))),
        ("tasks 3, 4 and 5", TaskRef(ids=(3, 4, 5))),
        ("it", TaskRef(pronoun=True)),
        ("that one", TaskRef(pronoun=True)),
        ("the last one", TaskRef(ordinal=-1)),
        ("the 2nd", TaskRef(ordinal=2)),
        ("the meeting task", TaskRef(title="meeting")),
        ("the task called 'Buy milk'", TaskRef(title="Buy milk")),
        ("all of them", TaskRef(bulk=True)),
        ("all tasks", TaskRef(bulk=True)),
    ],
)
def test_task_references(text: str, ref: TaskRef) -> None:
    assert read_ref(text) == ref


def test_filters_become_list_tasks_arguments() -> None:
    filters = ListFilters(status="pending", priority="high", tag="work", due_before=at(28, 0))
    assert filters.arguments() == {
        "status": "pending",
        "priority": "high",
        "tag": "work",
        "due_before": "2026-11-28T00:00:00+01:00",
        "sort": "due",
    }


def test_filters_without_a_due_window_keep_the_newest_first() -> None:
    assert ListFilters(status="pending", tag="work").arguments() == {
        "status": "pending",
        "tag": "work",
    }


def test_texting_shorthand_reads_as_its_words() -> None:
    """ "done w/ laundry" looked for a task "w/ laundry", found "Laundry" and said it had
    found nothing; "whats due 2day" listed every task."""
    done = understand("done w/ laundry", now=NOW, tz=PARIS)
    assert (done.intent, done.ref) == (Intent.COMPLETE, TaskRef(title="laundry"))
    assert understand("add lunch w/ sam", now=NOW, tz=PARIS).title == "Lunch with sam"
    assert understand("add coffee w/o sugar", now=NOW, tz=PARIS).title == "Coffee without sugar"
    today = understand("whats due 2day", now=NOW, tz=PARIS).filters
    assert today is not None
    assert (today.due_after, today.due_before) == (at(27, 0), at(28, 0))


def test_politeness_is_trimmed() -> None:
    assert clean("  Could you please   show my tasks, thanks!! ") == "show my tasks"
    assert clean("thanks") == "thanks"


@pytest.mark.parametrize(
    ("text", "moment", "phrase"),
    [
        ("buy milk tomorrow", at(28, 9), "tomorrow"),
        ("call mom tonight", at(27, 20), "tonight"),
        ("meeting next Monday at 5pm", at(30, 17), "next Monday at 5pm"),
        ("pay rent on Dec 3", at(3, 9, month=12), "on Dec 3"),
        ("dentist on 3rd december at 10:30", at(3, 10, 30, month=12), "on 3rd december at 10:30"),
        ("in 2 days", at(29, 15, 30), "in 2 days"),
        ("in an hour", at(27, 16, 30), "in an hour"),
        ("at 5pm", at(27, 17), "at 5pm"),
        ("at 9", at(28, 9), "at 9"),  # 9:00 has passed today
        ("at 5", at(27, 17), "at 5"),  # a bare 1-7 is afternoon
        ("pick up the kids at 3:30", at(28, 15, 30), "at 3:30"),  # so is 1:00-7:59
        ("at 4:45 tomorrow", at(28, 16, 45), "at 4:45 tomorrow"),
        ("at 03:30 tomorrow", at(28, 3, 30), "at 03:30 tomorrow"),  # a leading zero: as written
        ("at 8:15 tomorrow", at(28, 8, 15), "at 8:15 tomorrow"),
        ("by noon tomorrow", at(28, 12), "by noon tomorrow"),
        ("friday", at(4, 9, month=12), "friday"),  # today is Friday: the next one
        ("on sun", at(29, 9), "on sun"),
        ("report due 2026-12-24 at 17:00", at(24, 17, month=12), "due 2026-12-24 at 17:00"),
        ("next week", at(30, 9), "next week"),
        ("on Nov 2", at(2, 9, year=2027), "on Nov 2"),  # already past this year
        ("Dec 3 2027", at(3, 9, month=12, year=2027), "Dec 3 2027"),
        ("tomorrow morning", at(28, 9), "tomorrow morning"),
        ("at 3 pm tomorrow", at(28, 15), "at 3 pm tomorrow"),
    ],
)
def test_due_dates(text: str, moment: datetime, phrase: str) -> None:
    found = find_due(text, now=NOW, tz=PARIS)
    assert found is not None, text
    assert found.moment == moment
    assert text[found.start : found.end] == phrase


@pytest.mark.parametrize(
    "text", ["watch the sun rise", "buy 2 apples", "at 25:00", "on Feb 30", "13pm", "wed the date"]
)
def test_things_that_are_not_dates(text: str) -> None:
    assert find_due(text, now=NOW, tz=PARIS) is None


def test_a_due_date_is_read_in_the_users_time_zone() -> None:
    tokyo = find_due("tomorrow at 9am", now=NOW, tz=ZoneInfo("Asia/Tokyo"))
    assert tokyo is not None
    assert tokyo.moment.isoformat() == "2026-11-28T09:00:00+09:00"
    assert parse_due("next friday", now=NOW, tz=PARIS) == at(4, 9, month=12)
    assert parse_due("friday lunch", now=NOW, tz=PARIS) is None


def test_due_moments_are_described_relative_to_today() -> None:
    assert describe(at(27, 17), now=NOW, tz=PARIS) == "today at 17:00"
    assert describe(at(28, 9), now=NOW, tz=PARIS) == "tomorrow at 09:00"
    assert describe(at(3, 9, month=12), now=NOW, tz=PARIS) == "Thu 3 Dec at 09:00"
    assert describe(at(2, 9, year=2027), now=NOW, tz=PARIS) == "Tue 2 Nov 2027 at 09:00"


def test_words_are_read_in_any_case() -> None:
    check(
        "ADD Buy Milk TOMORROW AT 5PM Tagged Errands URGENT Every Week",
        Intent.ADD,
        title="Buy Milk",
        due_at=at(28, 17),
        tags=("errands",),
        priority="high",
        recurrence="weekly",
    )
    check("Show My PENDING Tasks", Intent.LIST, filters=ListFilters(status="pending"))
    check("Move task 3 to FRIDAY", Intent.UPDATE, due_at=at(4, 9, month=12))


# --- normalisation: slang, typing slips, emoticons ---------------------------------------------


@pytest.mark.parametrize(
    ("typed", "intent", "expected"),
    [
        ("addd buy stamps", Intent.ADD, {"title": "Buy stamps"}),
        ("craete a task to call Sam", Intent.ADD, {"title": "Call Sam"}),
        ("delte task 4", Intent.DELETE, {"ref": TaskRef(ids=(4,))}),
        ("mark tsk 3 as completed", Intent.COMPLETE, {"ref": TaskRef(ids=(3,))}),
        ("compelte task 3", Intent.COMPLETE, {"ref": TaskRef(ids=(3,))}),
        ("lemme see my tasks", Intent.LIST, {}),
        ("good morning :)", Intent.GREETING, {}),
        ("thank u \U0001f44d", Intent.THANKS, {}),
        ("don\u2019t let me forget to call mum", Intent.ADD, {"title": "Call mum"}),
    ],
)
def test_slips_slang_and_emoticons_read_as_the_words_meant(
    typed: str, intent: Intent, expected: dict[str, Any]
) -> None:
    check(typed, intent, **expected)


@pytest.mark.parametrize("text", ["how many tasks", "list my tasks", "show my tasks"])
def test_a_real_word_one_slip_from_a_command_keeps_its_meaning(text: str) -> None:
    """ "how" is one letter from "show": a message understood as typed is never "corrected"."""
    assert understand(text, now=NOW, tz=PARIS).intent is Intent.LIST
    assert understand(text, now=NOW, tz=PARIS).count is text.startswith("how many")


def test_an_apostrophe_inside_a_quoted_title_does_not_close_it() -> None:
    check("Add 'Reply to Tom's email' please", Intent.ADD, title="Reply to Tom's email")


def test_a_booking_keeps_when_it_is_for_in_its_title() -> None:
    check(
        "add book a table for saturday night", Intent.ADD, title="Book a table for saturday night"
    )
    check("add book a hotel for friday by tomorrow", Intent.ADD, due_at=at(28, 9))


def test_a_bulk_phrase_names_its_tag_by_the_word_left() -> None:
    command = understand("mark all my errands as done", now=NOW, tz=PARIS)
    assert command.ref is not None
    assert command.ref.bulk
    assert command.ref.filters == ListFilters(tag="errands")


# --- reminders -------------------------------------------------------------------------------


def reminders(text: str) -> list[dict[str, object]] | None:
    command = understand(text, now=NOW, tz=PARIS)
    return None if command.reminders is None else [r.argument() for r in command.reminders]


@pytest.mark.parametrize(
    ("text", "title", "due", "expected"),
    [
        ("remind me at 5pm to call mum", "Call mum", None, [{"at": at(27, 17).isoformat()}]),
        (
            "remind me in 10 minutes to stretch",
            "Stretch",
            None,
            [{"at": at(27, 15, 40).isoformat()}],
        ),
        (
            "remind me to call the dentist on Friday at 3pm",
            "Call the dentist",
            at(4, 15, month=12),
            [{"before_due_minutes": 0}],
        ),
        ("remind me to buy milk", "Buy milk", None, None),
    ],
)
def test_a_reminder_with_a_new_task(
    text: str, title: str, due: datetime | None, expected: list[dict[str, object]] | None
) -> None:
    command = understand(text, now=NOW, tz=PARIS)
    assert (command.intent, command.title, command.due_at) == (Intent.ADD, title, due)
    assert reminders(text) == expected


@pytest.mark.parametrize(
    ("text", "ref", "expected"),
    [
        ("remind me an hour before", TaskRef(pronoun=True), [{"before_due_minutes": 60}]),
        (
            "remind me half an hour before it's due",
            TaskRef(pronoun=True),
            [{"before_due_minutes": 30}],
        ),
        (
            "remind me 30 minutes before the dentist",
            TaskRef(title="dentist"),
            [{"before_due_minutes": 30}],
        ),
        ("remind me about it at 4pm", TaskRef(pronoun=True), [{"at": at(27, 16).isoformat()}]),
        ("stop reminding me about the dentist", TaskRef(title="dentist"), []),
        ("cancel the reminders for task 3", TaskRef(ids=(3,)), []),
        ("stop reminding me", TaskRef(pronoun=True), []),
    ],
)
def test_a_reminder_on_a_task_that_exists(
    text: str, ref: TaskRef, expected: list[dict[str, object]]
) -> None:
    check(text, Intent.UPDATE, ref=ref)
    assert reminders(text) == expected


@pytest.mark.parametrize(
    ("text", "intent", "minutes"),
    [
        ("remind me again in 10 minutes", Intent.SNOOZE, 10),
        ("snooze it for an hour", Intent.SNOOZE, 60),
        ("snooze", Intent.SNOOZE, 10),
        ("dismiss it", Intent.DISMISS, None),
        ("mark the reminder as read", Intent.DISMISS, None),
    ],
)
def test_snooze_and_dismiss(text: str, intent: Intent, minutes: int | None) -> None:
    check(text, intent, minutes=minutes)


def test_the_reminder_to_do_something_is_a_task_not_its_reminders() -> None:
    check("delete the reminder to call mum", Intent.DELETE, ref=TaskRef(title="call mum"))


@pytest.mark.parametrize(
    "text",
    [
        "something is due tomorrow",
        "nothing else is due today",
        "none of them is due today",
        "one is due tomorrow",
        "each is due friday",
        "whatever is due today",
        "a lot is due today",
        "so much is due today",
    ],
)
def test_a_word_that_names_no_task_said_to_be_due_moves_nothing(text: str) -> None:
    # "X is due Y" without "the" reads X as a title: a word that names no task ("something",
    # "a lot") would move whichever task has it in its title ("Parking lot", "Beach day").
    command = understand(text, now=NOW, tz=PARIS)
    assert command.intent is not Intent.UPDATE, command


def test_anything_due_is_still_a_question() -> None:
    check("anything is due tomorrow", Intent.LIST)


@pytest.mark.parametrize(
    ("text", "title"),
    [("rename task 1 to later", "Later"), ("retitle task 2 as lunch", "Lunch")],
)
def test_a_rename_to_words_of_a_time_is_a_rename(text: str, title: str) -> None:
    # "rename" asks for a title in so many words: no question whether a time was meant.
    command = understand(text, now=NOW, tz=PARIS)
    assert (command.intent, command.title) == (Intent.UPDATE, title), command


@pytest.mark.parametrize(
    ("text", "title", "description"),
    [
        ("add buy notebook", "Buy notebook", None),
        ("add meeting notes", "Meeting notes", None),
        ("add write notes for the talk", "Write notes for the talk", None),
        ("add call bob notes: ask about the car", "Call bob", "ask about the car"),
        ("add call the insurer with description ask about the claim", "Call the insurer",
         "ask about the claim"),
    ],
)  # fmt: skip
def test_a_word_for_notes_in_a_title_is_part_of_it(
    text: str, title: str, description: str | None
) -> None:
    # "notebook" gave the title "Buy" and the description "book"; "meeting notes", "Meeting"
    # and "s". A bare "notes" starts a description only with its colon.
    command = understand(text, now=NOW, tz=PARIS)
    assert (command.intent, command.title, command.description) == (
        Intent.ADD,
        title,
        description,
    )


# Words and the regular forms of them a title may hold: each is the same stem.
_FORMS = (
    ("buy", "buys", "buying"),
    ("grocery", "groceries"),
    ("study", "studies", "studying"),
    ("run", "runs", "running"),
    ("make", "makes", "making"),
    ("pay", "pays", "paying", "payment"),
    ("email", "emails", "emailed"),
    ("stamp", "stamps"),
    ("dentist", "dentist's", "dentists"),
    ("call", "calls", "calling", "called"),
    ("meeting", "meet", "meets"),
)


@pytest.mark.parametrize("forms", _FORMS, ids=lambda forms: forms[0])
def test_the_search_for_a_title_word_finds_every_form_of_it(forms: tuple[str, ...]) -> None:
    """list_tasks's ``q`` is a substring: what the agent searches for a word must be in every
    word that has its stem, or a task the stems match would not be found."""
    assert len({stem(form) for form in forms}) == 1, forms
    for said in forms:
        term = search_term(f"the {said} task")
        assert term is not None
        assert all(term in form for form in forms), (said, term)


def test_the_search_for_a_title_is_its_longest_word_piece_or_none() -> None:
    assert search_term("buying stamps") == "stamp"
    assert search_term("the dentist appointment") == "dentist"
    assert search_term("pay the bill") == "bil"  # "bill" and "bills" are "bil"
    assert search_term("Groceries") == "grocer"
    # Only words that name nothing: no search, the newest tasks are listed.
    assert search_term("the stuff") is None


@pytest.mark.parametrize(
    ("text", "title", "days"),
    [
        (
            "remind me to go to the gym every monday and thursday",
            "Go to the gym",
            ("Monday", "Thursday"),
        ),
        ("add gym every monday and every thursday", "Gym", ("Monday", "Thursday")),
        ("add yoga every mon, wed and fri", "Yoga", ("Monday", "Wednesday", "Friday")),
        ("add piano lesson each tuesday & friday", "Piano lesson", ("Tuesday", "Friday")),
        ("add swim every saturday or sunday", "Swim", ("Saturday", "Sunday")),
    ],
)
def test_a_repetition_on_several_weekdays_is_read_as_those_days_not_as_the_first(
    text: str, title: str, days: tuple[str, ...]
) -> None:
    """ "every monday and thursday" was read as a task due Monday titled "... every and
    thursday": one weekly task cannot repeat on two days, so the days are kept for the
    agent to ask about, and no repetition or due date is read from them."""
    check(text, Intent.ADD, title=title, weekdays=days, recurrence=None, due_at=None)


def test_one_weekday_is_still_a_weekly_task() -> None:
    check("add gym every monday", Intent.ADD, title="Gym", recurrence="weekly", weekdays=())


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("by end of day friday", at(4, 17, month=12)),
        ("end of day friday", at(4, 17, month=12)),
        ("friday by end of day", at(4, 17, month=12)),
        ("today eod", at(27, 17)),
        ("eod tomorrow", at(28, 17)),
        ("by the end of the day tomorrow", at(28, 17)),
        ("monday EOD", at(30, 17, month=11)),
        # No day: today, or tomorrow once 17:00 has passed (it is 15:30 in Paris).
        ("by end of day", at(27, 17)),
        ("eod", at(27, 17)),
    ],
)
def test_end_of_day_is_five_in_the_afternoon_of_that_day(text: str, moment: datetime) -> None:
    """ "by end of day" and "eod" were not read, and the agent asked for a day."""
    assert parse_due(text, now=NOW, tz=PARIS) == moment


def test_end_of_day_once_past_is_tomorrows() -> None:
    evening = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # 19:00 in Paris
    assert parse_due("by end of day", now=evening, tz=PARIS) == at(28, 17)


def test_a_task_due_by_end_of_day_is_added_with_it() -> None:
    check("add send the invoice by end of day friday", Intent.ADD, title="Send the invoice")
    check("add send the invoice by end of day friday", Intent.ADD, due_at=at(4, 17, month=12))
    check("add report due today eod", Intent.ADD, title="Report", due_at=at(27, 17))


def test_an_end_of_day_report_is_a_title_not_a_time() -> None:
    check("add review the end of day report", Intent.ADD, title="Review the end of day report")
    check("add write eod summary", Intent.ADD, title="Write eod summary", due_at=None)
    check("add send the eod summary by end of day", Intent.ADD, title="Send the eod summary")


def test_a_first_task_with_its_own_day_and_a_verb_after_and_are_two_tasks() -> None:
    command = understand("add gym every monday and call mom", now=NOW, tz=PARIS)
    assert [(item.title, item.recurrence, item.due_at) for item in command.items] == [
        ("Gym", "weekly", at(30, 9)),
        ("Call mom", None, None),
    ]
    # Without a verb after "and", one task, as "add fish and chips" is.
    one = understand("add dinner on friday and drinks", now=NOW, tz=PARIS)
    assert (one.title, one.items) == ("Dinner and drinks", ())


@pytest.mark.parametrize(
    ("text", "title", "due"),
    [
        ("add tomorrow gym", "Gym", at(28, 9)),
        ("add tonight dinner", "Dinner", at(27, 20)),
        ("add together time", "Together time", None),
        ("add notes", "Notes", None),
        ("add a task to buy milk", "Buy milk", None),
        ("add task called review", "Review", None),
    ],
)
def test_an_added_title_loses_whole_words_only(text: str, title: str, due: datetime | None) -> None:
    """ "add tomorrow gym" added "Morrow gym" (the "to" of "add ... to buy milk" was taken from
    "tomorrow"), and "add notes" a task "S" (the "note" of "add a note")."""
    check(text, Intent.ADD, title=title, due_at=due)


def test_a_list_with_a_task_on_several_weekdays_keeps_those_days_in_that_item() -> None:
    """ "add gym every monday and thursday, milk and eggs" was one item titled "Gym , milk and
    eggs": the days of one task are no list of tasks, the rest of the list is."""
    command = understand("add gym every monday and thursday, milk and eggs", now=NOW, tz=PARIS)
    assert [(item.title, item.weekdays) for item in command.items] == [
        ("Gym", ("Monday", "Thursday")),
        ("Milk", ()),
        ("Eggs", ()),
    ]
    # As with one weekday, a verb after "and" starts a task of its own.
    command = understand("add gym every monday and thursday and call mom", now=NOW, tz=PARIS)
    assert [(item.title, item.weekdays) for item in command.items] == [
        ("Gym", ("Monday", "Thursday")),
        ("Call mom", ()),
    ]
    # The days alone are still one task.
    check("add yoga every mon, wed and fri", Intent.ADD, title="Yoga", items=())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tag task 3 home work", {"ref": TaskRef(ids=(3,)), "added_tags": ("home", "work")}),
        ("tag task 3 #home #work", {"ref": TaskRef(ids=(3,)), "added_tags": ("home", "work")}),
        ("label #3 as home work", {"ref": TaskRef(ids=(3,)), "added_tags": ("home", "work")}),
        (
            "tag tasks 3 and 4 home work",
            {"ref": TaskRef(ids=(3, 4)), "added_tags": ("home", "work")},
        ),
        ("tag it home work", {"ref": TaskRef(pronoun=True), "added_tags": ("home", "work")}),
        ("untag task 3 home work", {"ref": TaskRef(ids=(3,)), "removed_tags": ("home", "work")}),
        # Words of the sentence between the task and its tags, or after them, are no tags.
        ("tag task 1 and errands", {"ref": TaskRef(ids=(1,)), "added_tags": ("errands",)}),
        ("untag task 12 and errands", {"ref": TaskRef(ids=(12,)), "removed_tags": ("errands",)}),
        ("tag task 3 and 4 and home", {"ref": TaskRef(ids=(3, 4)), "added_tags": ("home",)}),
        ("tag task 3 work as well", {"ref": TaskRef(ids=(3,)), "added_tags": ("work",)}),
        ("tag task 12 urgent too", {"ref": TaskRef(ids=(12,)), "added_tags": ("urgent",)}),
        ("tag task 3 with the tag home", {"ref": TaskRef(ids=(3,)), "added_tags": ("home",)}),
        # As before: one tag, a list with "and", and title words before a tag.
        ("tag task 3 home", {"ref": TaskRef(ids=(3,)), "added_tags": ("home",)}),
        ("tag task 3 as home and work", {"ref": TaskRef(ids=(3,)), "added_tags": ("home", "work")}),
        (
            "tag the milk task groceries",
            {"ref": TaskRef(title="milk"), "added_tags": ("groceries",)},
        ),
        # "that" or "this" may start title words: only a comma or "and" parts tags after them.
        (
            "tag that dentist appointment as health",
            {"added_tags": ("health",)},
        ),
    ],
)
def test_tag_task_with_two_words_adds_both_tags(text: str, expected: dict[str, Any]) -> None:
    """ "tag task 3 home work" tagged a task "3 home" #work: a task named by its number (or
    as "it") ends there, so each word after it is a tag."""
    check(text, Intent.UPDATE, **expected)


@pytest.mark.parametrize(
    ("text", "title", "tags"),
    [
        # A bare number may begin a title: it names no task by its number.
        ("tag 2 factor auth setup as security", "2 factor auth setup", ("security",)),
        # Words that join a sentence are no tags: the words are read as before.
        ("tag it support tickets as urgent", "it support tickets", ("urgent",)),
    ],
)
def test_spaced_tags_are_read_only_after_a_tasks_number_and_only_as_tags(
    text: str, title: str, tags: tuple[str, ...]
) -> None:
    """After a number or "it" every word became a tag ("#factor #auth #setup #as
    #security" on task 2): a title lookup that found nothing became a change of a task."""
    command = understand(text, now=NOW, tz=PARIS)
    assert command.ref is not None
    assert (command.ref.ids, command.ref.title, command.added_tags) == ((), title, tags)
    assert understand("tag task 3 as work, it is for the office", now=NOW, tz=PARIS).added_tags == (
        "work",
    )


def test_a_list_keeps_each_tasks_several_weekdays_with_that_task() -> None:
    command = understand("add swim every mon and wed, gym every tue and thu", now=NOW, tz=PARIS)
    assert [(item.title, item.weekdays) for item in command.items] == [
        ("Swim", ("Monday", "Wednesday")),
        ("Gym", ("Tuesday", "Thursday")),
    ]


@pytest.mark.parametrize("day", ["nov 27", "2026-11-27", "27 november"])
def test_due_before_a_day_is_before_that_day_begins_at_any_hour(day: str) -> None:
    """At 16:00 "before nov 27" (today) ended at 17:00, later at 23:59: a day without a time
    given to a new task moves through the day; before a day is before its start."""
    for hour in (8, 16, 18):
        now = NOW.replace(hour=hour)
        command = understand(f"what's due before {day}?", now=now, tz=PARIS)
        assert command.filters is not None
        assert command.filters.due_before == at(27, 0), (day, hour)


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("add todo list review", "Todo list review"),
        ("add task list cleanup", "Task list cleanup"),
        ("add a to-do list for the trip", "To-do list for the trip"),
        ("new todo list review", "Todo list review"),
        # Elsewhere the task word is only the kind of thing added, as before.
        ("add task buy milk", "Buy milk"),
        ("add todo buy milk", "Buy milk"),
        ("add task: list review", "List review"),
        # "list" with what it lists is a verb.
        ("add task list the bike on ebay", "List the bike on ebay"),
    ],
)
def test_a_task_word_before_list_is_part_of_the_title(text: str, title: str) -> None:
    """ "add todo list review" added "List review": "todo" was dropped as the filler word of
    "add todo buy milk", but before "list" it is part of the noun "todo list"."""
    check(text, Intent.ADD, title=title)


@pytest.mark.parametrize(
    ("text", "paris_time", "due"),
    [
        # "today" without a time is 09:00, then the end of the day, then its last minute.
        ("add today call mom", "16:00", at(27, 17)),
        ("add call mom today", "16:00", at(27, 17)),
        ("add call mom today", "08:00", at(27, 9)),
        ("add call mom today", "17:30", at(27, 23, 59)),
        ("add call mom on nov 27", "16:00", at(27, 17)),
        ("add call mom on 2026-11-27", "16:00", at(27, 17)),
        ("add pay rent by the 27th", "16:00", at(27, 17)),
        # Another day keeps 09:00, and a time said is the time meant.
        ("add tomorrow call mom", "16:00", at(28, 9)),
        ("add call mom today at 9am", "16:00", at(27, 9)),
        ("add call mom tonight", "16:00", at(27, 20)),
    ],
)
def test_a_task_due_today_without_a_time_is_not_due_in_the_past(
    text: str, paris_time: str, due: datetime
) -> None:
    """ "add today call mom" said at 16:00 was due today at 09:00, already past."""
    hour, minute = map(int, paris_time.split(":"))
    now = datetime(2026, 11, 27, hour, minute, tzinfo=PARIS)
    command = understand(text, now=now, tz=PARIS)
    assert (command.intent, command.due_at) == (Intent.ADD, due), (text, command)


@pytest.mark.parametrize(
    ("text", "paris_time", "due"),
    [
        # With "tonight", "evening" or "night", an hour from 8 to 11 is the evening's.
        ("add fix bike tonight at 9", "15:30", at(27, 21)),
        ("add movie at 9 tonight", "15:30", at(27, 21)),
        ("add call mom this evening at 10:30", "15:30", at(27, 22, 30)),
        ("add call mom tomorrow night at 9", "15:30", at(28, 21)),
        # On today, once past, the same hour in the evening while that is ahead.
        ("add call dad today at 9", "15:30", at(27, 21)),
        ("add call dad today at 9", "08:00", at(27, 9)),
        ("add call dad today at 9", "22:00", at(27, 9)),
        # Said with am, a leading zero or on another day: as said.
        ("add call dad today at 9am", "15:30", at(27, 9)),
        ("add call dad today at 09:00", "15:30", at(27, 9)),
        ("add call dad tomorrow at 9", "15:30", at(28, 9)),
        ("add call dad at 9", "15:30", at(28, 9)),
        ("add call dad this morning at 9", "15:30", at(27, 9)),
        ("add call dad today morning at 9", "15:30", at(27, 9)),
        # "tonight" without a time is never past.
        ("add call mom tonight", "23:30", at(27, 23, 59)),
    ],
)
def test_an_hour_without_am_or_pm_that_would_be_past_tonight_is_the_evenings(
    text: str, paris_time: str, due: datetime
) -> None:
    """ "add fix bike tonight at 9" and "add call dad today at 9" said at 14:30 were due at
    09:00 today, already past; "tonight" said at 23:30 was due at 20:00."""
    hour, minute = map(int, paris_time.split(":"))
    now = datetime(2026, 11, 27, hour, minute, tzinfo=PARIS)
    command = understand(text, now=now, tz=PARIS)
    assert (command.intent, command.due_at) == (Intent.ADD, due), (text, command)


@pytest.mark.parametrize(
    ("text", "title", "due"),
    [
        ("add dentist on the 3rd at 2:30pm", "Dentist", at(3, 14, 30, month=12)),
        ("add dentist at 2:30pm on the 3rd", "Dentist", at(3, 14, 30, month=12)),
        ("add dentist on the 15th at 2:30pm", "Dentist", at(15, 14, 30, month=12)),
        ("add pay rent by the 3rd at 5", "Pay rent", at(3, 17, month=12)),
        ("add dentist on the 3rd", "Dentist", at(3, 9, month=12)),
        ("add fix the 3rd floor light at 5pm", "Fix the 3rd floor light", at(27, 17)),
    ],
)
def test_a_day_of_the_month_with_a_time_is_that_day_at_that_time(
    text: str, title: str, due: datetime
) -> None:
    """ "add dentist on the 3rd at 2:30pm" added "Dentist on the 3rd" due tomorrow at 14:30:
    the time was read alone and the day of the month was left in the title."""
    check(text, Intent.ADD, title=title, due_at=due)


@pytest.mark.parametrize(
    ("text", "title", "repeats", "weekdays"),
    [
        ("add water plants every 3 days", "Water plants", "every 3 days", ()),
        ("add pay bills every 2 weeks", "Pay bills", "every 2 weeks", ()),
        ("add take meds twice a day", "Take meds", "twice a day", ()),
        ("add mow the lawn every other week", "Mow the lawn", "every other week", ()),
        ("add renew insurance yearly", "Renew insurance", "yearly", ()),
        (
            "add standup every weekday at 9am",
            "Standup",
            None,
            ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
        ),
        ("add gym every day", "Gym", None, ()),
        ("add check the week days schedule", "Check the week days schedule", None, ()),
        ("add standup fortnightly at 9am", "Standup", "fortnightly", ()),
        # An adverb of what the task is about, not of how it repeats: an ordinary title.
        ("add yearly report", "Yearly report", None, ()),
        ("add negotiate hourly rate", "Negotiate hourly rate", None, ()),
        ("add biweekly sync notes", "Biweekly sync notes", None, ()),
        ("remind me to file the yearly taxes", "File the yearly taxes", None, ()),
    ],
)
def test_a_repetition_no_task_can_hold_is_read_out_of_the_title(
    text: str, title: str, repeats: str | None, weekdays: tuple[str, ...]
) -> None:
    """ "add water plants every 3 days" was a task "Water plants every 3 days" that never
    repeats: the repetition is kept for the agent to decline, out of the title."""
    check(text, Intent.ADD, title=title, repeats=repeats, weekdays=weekdays)


@pytest.mark.parametrize(
    ("text", "title", "due"),
    [
        ("trash out tonite", "Trash out", at(27, 20)),
        ("remove the trash tonight", "Remove the trash", at(27, 20)),
        ("clear the table after dinner", "Clear the table after dinner", None),
        ("drop off the package tomorrow", "Drop off the package", at(28, 9)),
        ("drop off the package", "Drop off the package", None),
        ("clear up the kitchen", "Clear up the kitchen", None),
        ("cancel gym on friday", "Cancel gym", at(4, 9, month=12)),
        ("wipe down the counters later", "Wipe down the counters later", None),
    ],
)
def test_a_chore_said_with_a_word_for_deleting_and_when_it_is_done_is_added(
    text: str, title: str, due: datetime | None
) -> None:
    """ "drop off the package tomorrow" was a delete of the task "off the package tomorrow",
    "clear the table after dinner" one of "table after dinner": a time after the words, or a
    particle that makes the verb a chore's, says a chore to do, and no task is deleted on a
    day."""
    check(text, Intent.ADD, title=title, due_at=due, ref=None)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("clear today", TaskRef(title="today")),
        ("cancel friday", TaskRef(title="friday")),
        ("cancel tonight", TaskRef(title="tonight")),
        ("clear tomorrow", TaskRef(title="tomorrow")),
        ("remove today", TaskRef(title="today")),
        ("clear my friday", TaskRef(title="friday")),
    ],
)
def test_a_word_for_deleting_said_of_a_day_alone_names_no_chore(text: str, ref: TaskRef) -> None:
    """ "clear today" added a task "Clear" due today and "clear my friday" one "Clear my": with
    only the day after the verb there is no chore to add, and the words are a task's."""
    check(text, Intent.DELETE, ref=ref, chore=None)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("delete the milk task", TaskRef(title="milk")),
        ("remove task 3", TaskRef(ids=(3,))),
        ("cancel the dentist", TaskRef(title="dentist")),
        ("drop gym", TaskRef(title="gym")),
        # A word only ever said of the list keeps a time in the name it looks for.
        ("delete gym tomorrow", TaskRef(title="gym tomorrow")),
        # The list says a task is meant.
        ("take walk the dog off my list", TaskRef(title="walk the dog")),
        ("remove the 3pm meeting", TaskRef(title="3pm meeting")),
    ],
)
def test_a_delete_of_a_task_is_still_a_delete(text: str, ref: TaskRef) -> None:
    check(text, Intent.DELETE, ref=ref)


@pytest.mark.parametrize(
    ("text", "chore", "doubt"),
    [
        # Said of the user's own thing: maybe the chore, whatever task the words find.
        ("cancel my gym membership", "Cancel my gym membership", "any"),
        ("take off my shoes", "Take off my shoes", "any"),
        ("remove my gym membership", "Remove my gym membership", "any"),
        # Said of a thing: a chore done to it, unless the words are a task's whole title.
        ("throw out old milk", "Throw out old milk", "partial"),
        ("clear the table", "Clear the table", "partial"),
        ("toss old milk", "Toss old milk", "partial"),
        ("bin the old milk", "Bin the old milk", None),
        # Said of a plan: the task goes, unless it is the chore said again.
        ("cancel the dentist", "Cancel the dentist", None),
        ("drop gym", "Drop gym", None),
        ("remove the milk", "Remove the milk", None),
        # Words only ever said of the list, a number, the task word: a task, beyond doubt.
        ("delete the milk", None, None),
        ("remove task 3", None, None),
        ("cancel the dentist task", None, None),
        ("clear 'the table'", None, None),
    ],
)
def test_a_delete_of_title_words_carries_the_chore_they_may_name(
    text: str, chore: str | None, doubt: str | None
) -> None:
    """ "cancel my gym membership" deleted the task "Cancel gym membership", or "Gym
    membership", without a word: the agent needs the chore to ask about it."""
    check(text, Intent.DELETE, chore=chore, doubt=doubt)


def test_a_need_to_do_a_chore_is_a_task_not_a_delete() -> None:
    """ "I need to cancel my gym membership" deleted "Gym membership"."""
    check("I need to cancel my gym membership", Intent.ADD, title="Cancel my gym membership")
    check("I have to throw out the old milk", Intent.ADD, title="Throw out the old milk")
    check("I want to remove the milk task", Intent.DELETE, ref=TaskRef(title="milk"))
    check("I need to delete task 3", Intent.DELETE, ref=TaskRef(ids=(3,)))


@pytest.mark.parametrize(
    "text",
    [
        "I need to remove gym",
        "I want to cancel gym",
        "I have to remove gym",
        "I want to remove gym",
    ],
)
def test_a_need_to_delete_a_task_beyond_doubt_deletes_it(text: str) -> None:
    """ "I need to remove gym" added a task "Remove gym" while "I want to remove gym" deleted
    the task: a delete the words leave in no doubt is one after "I need to" too."""
    check(text, Intent.DELETE, ref=TaskRef(title="gym"))


NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("text", "tz", "moment", "phrase"),
    [
        # A number over 12 is the day, wherever the user is.
        ("pay rent 12/25", PARIS, at(25, 9, month=12), "12/25"),
        ("pay rent 12/25", NEW_YORK, datetime(2026, 12, 25, 9, tzinfo=NEW_YORK), "12/25"),
        ("due 12/25", PARIS, at(25, 9, month=12), "due 12/25"),
        ("dentist on 25/12 at 3pm", PARIS, at(25, 15, month=12), "on 25/12 at 3pm"),
        ("renew passport 25/12/2027", PARIS, at(25, 9, month=12, year=2027), "25/12/2027"),
        ("renew passport 12/25/27", PARIS, at(25, 9, month=12, year=2027), "12/25/27"),
        # Both could be the month: the zone's way of writing dates says which comes first.
        ("dentist on 3/4", PARIS, at(3, 9, month=4, year=2027), "on 3/4"),
        ("dentist on 3/4", NEW_YORK, datetime(2027, 3, 4, 9, tzinfo=NEW_YORK), "on 3/4"),
        # A day already past this year is next year's, as "on Nov 2" is.
        ("call mom on 2/11", PARIS, at(2, 9, year=2027), "on 2/11"),
        # Today, once 09:00 has passed, at 17:00, as "on Nov 27" is.
        ("call mom on 27/11", PARIS, at(27, 17), "on 27/11"),
        # "24/7" said alone is all the time; with a word for when, it is 24 July.
        ("dentist on 24/7", PARIS, at(24, 9, month=7, year=2027), "on 24/7"),
    ],
)
def test_a_date_in_numbers_is_read_month_or_day_first(
    text: str, tz: ZoneInfo, moment: datetime, phrase: str
) -> None:
    """ "pay rent 12/25" and "due 12/25" were not read as dates at all."""
    found = find_due(text, now=NOW, tz=tz)
    assert found is not None, text
    assert found.moment == moment, text
    assert text[found.start : found.end] == phrase


@pytest.mark.parametrize(
    "text",
    ["buy 1/2 gallon of milk", "support 24/7", "dentist 13/13", "rate it 3.5/10", "on 2/30"],
)
def test_numbers_with_a_slash_that_are_no_date(text: str) -> None:
    assert find_due(text, now=NOW, tz=PARIS) is None


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("add finish chapter 3/4", "Finish chapter 3/4"),
        ("add read pages 10/10", "Read pages 10/10"),
        ("add score was 3/4", "Score was 3/4"),
        ("add mix ratio 1/3", "Mix ratio 1/3"),
        ("add version 2/3", "Version 2/3"),
        ("add read part of 3/4", "Read part of 3/4"),
        ("add ratio 16:9/4", "Ratio 16:9/4"),
        ("add flights 12/20-12/27", "Flights 12/20-12/27"),
    ],
)
def test_a_fraction_a_score_or_a_span_in_numbers_stays_in_the_title(text: str, title: str) -> None:
    """ "add finish chapter 3/4" was "Finish chapter" due 3 April, "add ratio 16:9/4" "Ratio
    16" and "add flights 12/20-12/27" lost a date: after a word that counts, or next to ":" or
    "-", numbers with a slash are no day."""
    check(text, Intent.ADD, title=title, due_at=None)


def test_a_date_in_numbers_after_a_word_that_counts_is_read_with_a_word_for_when() -> None:
    check(
        "add chapter 3 due 3/4", Intent.ADD, title="Chapter 3", due_at=at(3, 9, month=4, year=2027)
    )
    check("add pay rent 3/4", Intent.ADD, title="Pay rent", due_at=at(3, 9, month=4, year=2027))


def test_a_task_due_on_a_date_in_numbers_is_added_with_it() -> None:
    check("pay rent 12/25", Intent.ADD, title="Pay rent", due_at=at(25, 9, month=12))
    check("add pay rent on 25/12", Intent.ADD, title="Pay rent", due_at=at(25, 9, month=12))
    check("add buy 1/2 gallon of milk", Intent.ADD, title="Buy 1/2 gallon of milk", due_at=None)


@pytest.mark.parametrize(
    ("text", "moment", "phrase"),
    [
        # A short name said alone ends the message.
        ("call mom sat", at(28, 9), "sat"),
        ("gym tue 6pm", at(1, 18, month=12), "tue 6pm"),
        ("pay rent thurs.", at(3, 9, month=12), "thurs."),
        # A week after the next one.
        ("dentist friday after next", at(11, 9, month=12), "friday after next"),
        ("dentist 5pm friday after next", at(11, 17, month=12), "5pm friday after next"),
        ("dentist the friday after next", at(11, 9, month=12), "the friday after next"),
        ("dentist monday after next week", at(7, 9, month=12), "monday after next week"),
        ("dentist a week from friday", at(11, 9, month=12), "a week from friday"),
        (
            "review two weeks from monday at 3pm",
            at(14, 15, month=12),
            "two weeks from monday at 3pm",
        ),
        ("call mom a week from tomorrow", at(5, 9, month=12), "a week from tomorrow"),
    ],
)
def test_short_weekday_names_and_a_week_after_a_day(
    text: str, moment: datetime, phrase: str
) -> None:
    """ "call mom sat" and "dentist friday after next" had no date ("call mom on sat" had)."""
    found = find_due(text, now=NOW, tz=PARIS)
    assert found is not None, text
    assert found.moment == moment, text
    assert text[found.start : found.end] == phrase


@pytest.mark.parametrize(
    "text", ["lie in the sun", "call mom sun", "we got wed", "sat exam prep", "buy mon cheri"]
)
def test_a_short_weekday_name_that_is_a_word_or_not_at_the_end_is_no_date(text: str) -> None:
    assert find_due(text, now=NOW, tz=PARIS) is None


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("add register for the SAT", "Register for the SAT"),
        ("add study for the sat", "Study for the sat"),
        ("add take the sat", "Take the sat"),
        ("add c'mon", "C'mon"),
        ("add sat", "Sat"),
        ("add mon", "Mon"),
    ],
)
def test_a_short_weekday_name_after_an_article_or_alone_is_a_title_word(
    text: str, title: str
) -> None:
    """ "add register for the SAT" was "Register for the" due Saturday, "add c'mon" "C" due
    Monday, and "add sat" asked for a title and lost the day: after "the", "a" or "my", after
    an apostrophe, in capitals, or as the whole title, the short name is a word."""
    check(text, Intent.ADD, title=title, due_at=None)


def test_a_short_weekday_name_in_capitals_is_a_task_to_delete() -> None:
    """ "cancel the SAT" (the task "SAT exam") added a task "Cancel the" due Saturday."""
    check("cancel the SAT", Intent.DELETE, ref=TaskRef(title="SAT"))
    check("cancel sat", Intent.DELETE, ref=TaskRef(title="sat"))
    check("CALL MOM SAT", Intent.ADD, title="CALL MOM", due_at=at(28, 9))


def test_a_day_after_next_said_with_a_time_or_the_is_read_whole() -> None:
    """ "add dentist 5pm friday after next" was "Dentist after next" due Friday 4 December,
    "the friday after next" left "Dentist the" and "monday after next week" "Dentist week"."""
    check(
        "add dentist 5pm friday after next",
        Intent.ADD,
        title="Dentist",
        due_at=at(11, 17, month=12),
    )
    check(
        "add dentist the friday after next", Intent.ADD, title="Dentist", due_at=at(11, 9, month=12)
    )
    check(
        "add dentist monday after next week", Intent.ADD, title="Dentist", due_at=at(7, 9, month=12)
    )


def test_a_task_said_with_a_short_weekday_name_is_added_for_that_day() -> None:
    check("call mom sat", Intent.ADD, title="Call mom", due_at=at(28, 9))
    check("add gym tue", Intent.ADD, title="Gym", due_at=at(1, 9, month=12))
    check("add lie in the sun", Intent.ADD, title="Lie in the sun", due_at=None)


@pytest.mark.parametrize(
    ("text", "ref", "asks"),
    [
        ("when is the dentist due?", TaskRef(title="dentist"), "due"),
        ("when's task 3 due", TaskRef(ids=(3,)), "due"),
        ("did I pay the bill?", TaskRef(title="pay the bill"), "done"),
        ("is the dentist done?", TaskRef(title="dentist"), "status"),
        ("is task 3 done?", TaskRef(ids=(3,)), "status"),
        ("what's the status of the milk task", TaskRef(title="milk"), "status"),
        ("has the report been finished yet?", TaskRef(title="report"), "status"),
    ],
)
def test_a_question_about_one_task_names_that_task(text: str, ref: TaskRef, asks: str) -> None:
    """ "is task 3 done?" was a listing of every task, "is the dentist done?" a search."""
    check(text, Intent.LIST, ref=ref, asks=asks)


@pytest.mark.parametrize(
    ("text", "title", "due"),
    [
        ("due 12/25 pay rent", "Pay rent", at(25, 9, month=12)),
        ("tomorrow call mom", "Call mom", at(28, 9)),
        ("on monday call the bank", "Call the bank", at(30, 9)),
    ],
)
def test_an_order_to_oneself_may_say_its_day_first(text: str, title: str, due: datetime) -> None:
    """ "due 12/25 pay rent" and "tomorrow call mom" were no task: the order's verb had to
    come first."""
    check(text, Intent.ADD, title=title, due_at=due)


@pytest.mark.parametrize("text", ["friday dentist", "tomorrow is busy"])
def test_a_day_first_without_an_order_after_it_adds_nothing(text: str) -> None:
    assert understand(text, now=NOW, tz=PARIS).intent is not Intent.ADD


def steps(text: str) -> list[tuple[Intent, str | None, dict[str, Any]]]:
    """The requests of a message: each step's intent, its words and what it is about."""
    command = understand(text, now=NOW, tz=PARIS)
    assert command.intent is Intent.SEVERAL, (text, command)
    read = []
    for step in command.steps:
        about: dict[str, Any] = {"title": step.title} if step.title else {}
        about |= {"ref": step.ref} if step.ref is not None else {}
        about |= {"due_at": step.due_at} if step.due_at is not None else {}
        read.append((step.intent, step.said, about))
    return read


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "add milk and delete task 3",
            [
                (Intent.ADD, "add milk", {"title": "Milk"}),
                (Intent.DELETE, "delete task 3", {"ref": TaskRef(ids=(3,))}),
            ],
        ),
        (
            "add milk then show my tasks",
            [(Intent.ADD, "add milk", {"title": "Milk"}), (Intent.LIST, "show my tasks", {})],
        ),
        (
            "add call mom. also delete task 2",
            [
                (Intent.ADD, "add call mom", {"title": "Call mom"}),
                (Intent.DELETE, "delete task 2", {"ref": TaskRef(ids=(2,))}),
            ],
        ),
        (
            "add dentist tomorrow and mark task 4 as done",
            [
                (Intent.ADD, "add dentist tomorrow", {"title": "Dentist", "due_at": at(28, 9)}),
                (Intent.COMPLETE, "mark task 4 as done", {"ref": TaskRef(ids=(4,))}),
            ],
        ),
        (
            "delete task 3 and add buy milk",
            [
                (Intent.DELETE, "delete task 3", {"ref": TaskRef(ids=(3,))}),
                (Intent.ADD, "add buy milk", {"title": "Buy milk"}),
            ],
        ),
        (
            "add pay rent, then list everything",
            [
                (Intent.ADD, "add pay rent", {"title": "Pay rent"}),
                (Intent.LIST, "list everything", {}),
            ],
        ),
        (
            "add milk and um, could you delete task 3 please",
            [
                (Intent.ADD, "add milk", {"title": "Milk"}),
                (Intent.DELETE, "could you delete task 3", {"ref": TaskRef(ids=(3,))}),
            ],
        ),
        (
            "add milk and add eggs",
            [
                (Intent.ADD, "add milk", {"title": "Milk"}),
                (Intent.ADD, "add eggs", {"title": "Eggs"}),
            ],
        ),
        (
            "add dentist and make it high priority",
            [
                (Intent.ADD, "add dentist", {"title": "Dentist"}),
                (Intent.UPDATE, "make it high priority", {"ref": TaskRef(pronoun=True)}),
            ],
        ),
        # After a new task, a delete by title words may be the same title's ("add read and
        # delete old emails"): asked for one at a time, never a task found and deleted.
        (
            "add milk and delete the dentist",
            [
                (Intent.ADD, "add milk", {"title": "Milk"}),
                (Intent.UNKNOWN, "delete the dentist", {}),
            ],
        ),
        (
            "complete task 3 and delete the dentist",
            [
                (Intent.COMPLETE, "complete task 3", {"ref": TaskRef(ids=(3,))}),
                (Intent.DELETE, "delete the dentist", {"ref": TaskRef(title="dentist")}),
            ],
        ),
    ],
)
def test_two_requests_in_one_message_are_each_read_alone(
    text: str, expected: list[tuple[Intent, str, dict[str, Any]]]
) -> None:
    """Each was one new task named after both ("Milk and delete task 3"), or a deletion of a
    task called "3 and add buy milk"."""
    assert steps(text) == expected


def test_the_requests_of_a_list_of_tasks_keep_the_list() -> None:
    [added, listed] = understand(
        "add milk, eggs and bread then show my tasks", now=NOW, tz=PARIS
    ).steps
    assert [item.title for item in added.items] == ["Milk", "Eggs", "Bread"]
    assert listed.intent is Intent.LIST


@pytest.mark.parametrize(
    ("text", "title", "reminder"),
    [
        ("add laundry and remind me at 5pm", "Laundry", Reminder(at=at(27, 17))),
        ("add laundry, remind me about it at 5pm", "Laundry", Reminder(at=at(27, 17))),
        (
            "add the dentist tomorrow at 3pm and remind me an hour before",
            "Dentist",
            Reminder(before_due_minutes=60),
        ),
    ],
)
def test_a_reminder_said_after_a_new_task_is_that_tasks(
    text: str, title: str, reminder: Reminder
) -> None:
    """ "add laundry and remind me at 5pm" was the task "Laundry and remind me", due at 17:00."""
    check(text, Intent.ADD, title=title, reminders=(reminder,))


def test_a_new_task_said_with_a_plain_remind_me_is_a_plain_task() -> None:
    check("add laundry and remind me", Intent.ADD, title="Laundry", reminders=None)


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("add fish and chips", "Fish and chips"),
        ("add rock and roll night", "Rock and roll night"),
        ("add pick up kids then groceries", "Pick up kids then groceries"),
        (
            "add wash the car and complete the tax return",
            "Wash the car and complete the tax return",
        ),
        ("add buy milk and set the table", "Buy milk and set the table"),
        ("add buy milk and show the kids the schedule", "Buy milk and show the kids the schedule"),
        ("add 'milk and delete task 3'", "milk and delete task 3"),
    ],
)
def test_a_title_that_goes_on_with_and_or_then_stays_one_task(text: str, title: str) -> None:
    """What follows "and" is no request of its own: not a command word ("chips"), or a chore's
    words after a verb that starts chores too ("complete the tax return", "set the table")."""
    check(text, Intent.ADD, title=title)


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("add write the essay then list the sources", ["Write the essay", "List the sources"]),
        ("add check the tyres and change the oil", ["Check the tyres", "Change the oil"]),
        ("add call mom and email Sam", ["Call mom", "Email Sam"]),
    ],
)
def test_chores_said_with_verbs_stay_a_list_of_tasks(text: str, items: list[str]) -> None:
    command = understand(text, now=NOW, tz=PARIS)
    assert command.intent is Intent.ADD, command
    assert [item.title for item in command.items] == items


@pytest.mark.parametrize(
    "text",
    [
        "the party got cancelled, delete the party task",
        "I should really clean out the fridge, put it on my list",
        "actually I just did it, mark it as done",
        "my mom called, add call her back",
    ],
)
def test_a_clause_that_only_tells_something_is_not_a_request_of_its_own(text: str) -> None:
    assert understand(text, now=NOW, tz=PARIS).intent is not Intent.SEVERAL


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("add a task and delete task 3", ["add a task", "delete task 3"]),
        ("delete task 3 and remind me at 5pm", ["delete task 3", "remind me at 5pm"]),
    ],
)
def test_a_request_that_would_swallow_another_is_asked_again(text: str, said: list[str]) -> None:
    """A title or a task's words that would hold another request: both are held as steps, the
    one that cannot run alone as unknown, so the agent asks for them one at a time."""
    command = understand(text, now=NOW, tz=PARIS)
    assert command.intent is Intent.SEVERAL, command
    assert [step.said for step in command.steps] == said
    assert any(step.intent is Intent.UNKNOWN for step in command.steps)


@pytest.mark.parametrize(
    ("text", "title", "due"),
    [
        ("call Blythe sat", "Call Blythe", at(28, 9)),
        ("call blythe mon", "Call blythe", at(30, 9)),
        ("call Goethe tue", "Call Goethe", at(1, 9, month=12)),
        ("bathe sat", "Bathe", at(28, 9)),
    ],
)
def test_a_short_weekday_after_a_word_ending_in_the_is_a_day(
    text: str, title: str, due: datetime
) -> None:
    """ "call Blythe sat" was a task "Call Blythe" due Saturday; it is now not understood."""
    check(text, Intent.ADD, title=title, due_at=due)


@pytest.mark.parametrize(
    ("text", "title", "due"),
    [
        ("call mom FRI", "Call mom", at(4, 9, month=12)),
        ("pay rent TUE", "Pay rent", at(1, 9, month=12)),
    ],
)
def test_a_short_weekday_in_capitals_that_is_no_word_is_a_day(
    text: str, title: str, due: datetime
) -> None:
    check(text, Intent.ADD, title=title, due_at=due)
