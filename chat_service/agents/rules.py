"""The rule-based agent: offline, deterministic, and good at everyday task English.

It reads the message with ``language.understand``, resolves task references (ids, "it" from
the stored history, title words via ``list_tasks``), calls the todo tools and answers in a
friendly sentence. Greetings and help never touch the tools.

Where the conversation stands is data: each reply carries a ``DialogueState`` (stored with the
message) saying what it waits for, a title, a choice among candidate tasks or the yes/no of a
bulk action, with the pending command. The next message is read against that state, never
against the wording of the reply. Tool refusals are told apart by their error code.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from chat_service.agents.base import (
    DEFAULT_MAX_TOOL_CALLS,
    AgentEvent,
    HistoryMessage,
    ReplyEvent,
    ToolCall,
    ToolCallEvent,
    Tools,
    TurnInput,
    in_users_zone,
    over_bound,
)
from chat_service.agents.dates import describe, find_due
from chat_service.agents.language import (
    ACTION_VERBS,
    QUOTES,
    STEP_INTENTS,
    Command,
    Intent,
    ListFilters,
    TaskRef,
    clean,
    drop_fillers,
    read_ref,
    understand,
)
from chat_service.agents.state import (
    MAX_CANDIDATES,
    NOTHING,
    Awaiting,
    DialogueState,
    PendingCommand,
    is_yes,
    is_yes_or_no,
)
from shared.text import label_key
from shared.timezones import local_or_as_given

LIST_LINES = 20
# The todo service's limits: longer text is cut to fit, and the reply says so.
TITLE_MAX = 200
DESCRIPTION_MAX = 1000
# The todo service's bound on a task's tags: a tag that would make more is not added.
TAGS_MAX = 10
TASK_RESULT_TOOLS = ("add_task", "complete_task", "update_task", "delete_task")
NOTIFICATION_TOOLS = ("snooze_notification", "dismiss_notification")
BULK_LIST_LIMIT = 100

GREETING = (
    "Hi! I'm your task assistant. Tell me what to add, or ask “What's pending?” to see your list."
)
THANKS = "You're welcome! Anything else I can do for your tasks?"
HELP = (
    "I can manage your tasks for you. For example:\n"
    "• “Add a task to buy groceries tomorrow at 5pm #errands”, “add milk, eggs and bread”\n"
    "• “Show me all my tasks”, “What's pending?”, “How many tasks are left?”, "
    "“What did I finish this week?”\n"
    "• “Mark task 3 as complete”, “I bought the groceries”, “undo that”\n"
    "• “Change task 1 to 'Call mom tonight'”, “make it high priority”, "
    "“push the dentist to next Monday”\n"
    "• “Delete the meeting task”, “delete all completed tasks” (I ask before bulk changes)"
)
UNKNOWN = (
    "Sorry, I can only help with your task list. I can add, list, complete, change and delete "
    "tasks — try “Add a task to call mom tomorrow”, “What's pending?” or “Mark task 3 as "
    "done”. Say “help” for more."
)
ASK_TITLE = "Sure — what should the new task be called?"
ASK_WHICH = "Which one did you mean? You can answer with its number."
NO_REFERENCE = (
    "Which task do you mean? Give me its number (e.g. “task 3”) or a word from its title."
)
CANCELLED = "OK, I cancelled that — nothing was changed."
CANNOT = (
    "Sorry, I can't do that: I only manage your own task list. I can add, list, complete, "
    "change and delete your tasks."
)
NOTED = "OK! Anything else I can do for your tasks?"
NO_RECURRENCE_CHANGE = (
    "Sorry, I can't change how a task repeats: a task repeats as it was added, e.g. “add take "
    "out the trash every monday”. I can change its title, due date, priority, tags or "
    "description."
)
_BOTH = re.compile(
    r"^\W*(?:both|both of them|all|all of them|all three|every one|each of them|them all)\W*$",
    re.IGNORECASE,
)
# A request made to the assistant ("can you call my mom?") for something only the user can do.
_ASKS_ME = re.compile(r"^\W*(?:can|could|would|will) (?:you|u)\b", re.IGNORECASE)
_ERRANDS = re.compile(
    r"^(?:call|phone|ring|text|email|book|order|buy|pay|visit|pick up|drive|cook|clean)\b",
    re.IGNORECASE,
)
_CANCEL = re.compile(
    r"^\W*(?:never ?mind|nevermind|cancel|forget it|forget about it|nothing|none|no|nope|stop|"
    r"skip it|leave it|don't bother|nah)\b",
    re.IGNORECASE,
)
NOTHING_TO_UNDO = (
    "There's nothing to undo: my last reply didn't change any of your tasks, and I only undo "
    "the change I just made."
)

_ACTIONS = {
    Intent.COMPLETE: "complete_task",
    Intent.REOPEN: "complete_task",
    Intent.DELETE: "delete_task",
    Intent.UPDATE: "update_task",
}
_BULK_ACTIONS = {Intent.COMPLETE: "complete_tasks", Intent.DELETE: "delete_tasks"}
_OPTION_WORDS = {
    Intent.ADD: "add it as a new task",
    Intent.LIST: "look it up in your tasks",
    Intent.COMPLETE: "mark a task as done",
    Intent.REOPEN: "mark a task as not done",
    Intent.DELETE: "delete a task",
    Intent.UPDATE: "change a task",
    Intent.FACT: "mark the matching task as done",
    Intent.UNDO: "undo my last change",
    Intent.ANSWER: "pick a task",
}


@dataclass(frozen=True)
class TaskMention:
    id: int
    title: str
    # As the todo service gave them in this turn, when read.
    due_at: str | None = None
    tags: tuple[str, ...] = ()


@dataclass
class _Resolution:
    tasks: list[TaskMention] = field(default_factory=list)
    reply: ReplyEvent | None = None
    listed: bool = False  # the tasks come from this turn's listing, due dates and all


@dataclass
class _Reading:
    """Tasks read by id (``get_task``): those found, the ids not found (missing or another
    user's), and the reply when a read failed otherwise."""

    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    reply: ReplyEvent | None = None


@dataclass
class _Current:
    """Tasks by id with their due dates and tags as the todo service holds them, and the reply
    when reading them failed."""

    tasks: dict[int, TaskMention] = field(default_factory=dict)
    reply: ReplyEvent | None = None


@dataclass(frozen=True, kw_only=True)
class RulesAgent:
    """Implements ``Agent`` without any model: rules, the stored history and the tools.

    A turn makes at most ``max_tool_calls`` tool calls: a command that would need more (one
    call per task of "delete 1, 2, ..., 999") makes none and asks the user to narrow it.
    """

    max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS

    async def run(self, turn: TurnInput) -> AsyncGenerator[AgentEvent, None]:
        history, message, now, tz = turn.history, turn.message, turn.now, turn.tz
        state = waiting_for(history)
        command = understand(message, now=now, tz=tz)
        if command.intent is Intent.THANKS and _GOT_IT.match(drop_fillers(message)):
            # "got it" answers a reminder when one is unread, else it is only thanks.
            command = Command(Intent.DISMISS, title=_GOT_IT_MARK)
        if state.awaiting in {Awaiting.CHOICE, Awaiting.TITLE} and _CANCEL.match(message):
            yield ReplyEvent(CANCELLED)
            return
        unsupported = _UNSUPPORTED.search(clean(message)) or (
            _ASKS_ME.match(drop_fillers(message, keep_thanks=True))
            and _ERRANDS.match(clean(message))
        )
        if state.awaiting is Awaiting.NONE and (
            (unsupported and command.intent in {Intent.UNKNOWN, Intent.CLARIFY, Intent.LIST})
            or _OTHERS_LIST.search(clean(message))
        ):
            yield ReplyEvent(CANNOT)
            return
        if state.awaiting is Awaiting.NONE and asks_to_change_recurrence(message):
            yield ReplyEvent(NO_RECURRENCE_CHANGE)
            return
        if (
            state.awaiting is Awaiting.NONE
            and command.intent is Intent.UNKNOWN
            and is_yes_or_no(message)
        ):
            yield ReplyEvent(NOTED)
            return
        if command.intent is Intent.UNKNOWN and _ASKS_ME.match(
            drop_fillers(message, keep_thanks=True)
        ):
            command = Command(Intent.CLARIFY, title=clean(message))
        if (
            state.awaiting is Awaiting.NONE
            and command.intent is Intent.UNKNOWN
            and _order_to_oneself(clean(message))
            and not _FOR_ME.search(message)
        ):
            async for event in self._order(clean(message), turn):
                yield event
            return
        more = _ADDITIVE.match(clean(message))
        if (
            state.awaiting is Awaiting.NONE
            and command.intent in {Intent.UNKNOWN, Intent.CLARIFY}
            and more is not None
            and [call.name for call in last_changes(history)[:1]] == ["add_task"]
        ):
            # "bread as well", right after adding: another task of the same kind.
            command = understand(f"add {more['what']}", now=now, tz=tz)
        if command.intent is Intent.UNKNOWN and _bare_phrase(clean(message), now=now, tz=tz):
            command = Command(
                Intent.CLARIFY, title=clean(message), options=(Intent.ADD, Intent.LIST)
            )
        if state.chore is not None and _ADD_IT.match(message):
            # "add it", "no, add it as a new task", answering a question about deleting that
            # offered to add the chore instead: the chore, as a new task.
            async for event in self._act(understand(f"add {state.chore}", now=now, tz=tz), turn):
                yield event
            return
        if state.awaiting is Awaiting.CONFIRMATION:
            async for event in self._confirm(state, command, turn):
                yield event
            return
        if (
            state.awaiting is Awaiting.CHOICE
            and state.command is not None
            and state.command.action == "add_task"
            and _ADD_IT.match(message)
        ):
            # "add it", answering "do you want me to add it as a new task or ...?": the phrase
            # asked about, read as a new task.
            title = str(state.command.arguments.get("title", ""))
            command = understand(f"add {title}", now=now, tz=tz)
        if (
            state.awaiting is Awaiting.CHOICE
            and state.command is not None
            # The phrase a clarifying question asked about is added by "add it" alone: a
            # number in answer to it names a task, no choice among candidates.
            and state.command.action != "add_task"
        ):
            # A move by a span or to a day alone, or a tag added or removed, reads each task
            # first: two calls a task.
            needed = len(state.candidates) * (2 if _reads_current(state.command) else 1)
            if _BOTH.match(message) and len(state.candidates) > 1 and needed > self.max_tool_calls:
                yield over_bound(self.max_tool_calls)
                return
            if _BOTH.match(message) and len(state.candidates) > 1:
                titles = _titles(history[-1])
                tasks = [TaskMention(i, titles.get(i, "")) for i in sorted(state.candidates)]
                async for event in self._apply(state.command, tasks, turn, listed=False):
                    yield event
                return
            chosen = _choose(state, command, message, history)
            if chosen is not None:
                async for event in self._run_on(state.command, chosen, turn):
                    yield event
                return
        if (
            state.awaiting is Awaiting.TITLE
            and state.command is not None
            and state.command.action == "update_task"
            and len(state.candidates) == 1
            and command.intent in {Intent.UNKNOWN, Intent.CLARIFY, Intent.ADD, Intent.FACT}
        ):
            title = clean(message).strip(QUOTES).strip()
            title = title[:1].upper() + title[1:TITLE_MAX]
            rename = PendingCommand(action="update_task", arguments={"title": title})
            task = TaskMention(state.candidates[0], "")
            async for event in self._run_on(rename, task, turn):
                yield event
            return
        if state.awaiting is Awaiting.TITLE and (
            command.intent in {Intent.UNKNOWN, Intent.CLARIFY, Intent.ANSWER, Intent.FACT}
            or (command.intent is Intent.ADD and not command.title)
        ):
            command = understand(f"add {message}", now=now, tz=tz)
        async for event in self._act(command, turn):
            yield event

    async def _act(self, command: Command, turn: TurnInput) -> AsyncIterator[AgentEvent]:
        intent = command.intent
        if intent is Intent.GREETING:
            yield ReplyEvent(GREETING)
        elif intent is Intent.THANKS:
            yield ReplyEvent(THANKS)
        elif intent is Intent.HELP:
            yield ReplyEvent(HELP)
        elif intent is Intent.ADD:
            async for event in self._add(command, turn):
                yield event
        elif intent is Intent.SEVERAL:
            async for event in self._several(command, turn):
                yield event
        elif intent is Intent.LIST:
            async for event in self._list(command, turn):
                yield event
        elif intent is Intent.FACT:
            async for event in self._fact(command, turn):
                yield event
        elif intent is Intent.UNDO:
            async for event in self._undo(turn):
                yield event
        elif intent in {Intent.SNOOZE, Intent.DISMISS}:
            async for event in self._notification(command, turn):
                yield event
        elif intent in _ACTIONS:
            async for event in self._change(command, turn):
                yield event
        elif intent is Intent.ANSWER and command.ref is not None and command.ref.ids:
            ids = ", ".join(f"task {i}" for i in command.ref.ids)
            yield ReplyEvent(
                f"What would you like to do with {ids}? I can mark it done, change it or "
                "delete it.",
                DialogueState(awaiting=Awaiting.CHOICE),
            )
        elif intent is Intent.CLARIFY and command.unread_when is not None:
            yield _ask_when(command)
        elif intent is Intent.CLARIFY or (intent is Intent.ANSWER and command.ref is not None):
            yield _clarify(command)
        else:
            yield ReplyEvent(UNKNOWN)

    # --- several requests in one message --------------------------------------------------------

    async def _several(self, command: Command, turn: TurnInput) -> AsyncIterator[AgentEvent]:
        """ "add milk and delete task 3": each request as it would run alone, in the order
        said, within the turn's bound of tool calls, and one reply saying what each did. "It"
        in a later request is what the requests before it touched ("add the dentist and make
        it urgent"). A request that asks something (which task? a confirmation?) ends the
        turn with its question, and the reply says which requests are still to do; so do one
        that did nothing (no such task, a refusal: an "it" after it would be a task of an
        earlier message) and one that would pass the bound. Unless each reads as a request on
        its own, none runs."""
        steps = command.steps
        if not all(step.intent in STEP_INTENTS for step in steps):
            yield ReplyEvent(_one_at_a_time(steps))
            return
        replies: list[str] = []
        made: list[ToolCall] = []
        for index, step in enumerate(steps):
            before = len(made)
            left = self.max_tool_calls - before
            # "It" is the task the requests before this one touched, as if already stored.
            history = [*turn.history, HistoryMessage("assistant", "", tuple(made))]
            alone = replace(turn, history=history if made else turn.history)
            reply = over_bound(left)
            if left > 0:
                async for event in replace(self, max_tool_calls=left)._act(step, alone):
                    if isinstance(event, ToolCallEvent):
                        made.append(event.call)
                        yield event
                    else:
                        reply = event
            if reply.over_bound:
                # It changed nothing (at most it looked tasks up): it and the rest wait.
                replies.append(_too_many_now(steps[index:], self.max_tool_calls))
                break
            replies.append(reply.text)
            if reply.state.awaiting is not Awaiting.NONE:
                if index + 1 < len(steps):
                    replies.append(_still_to_do(steps[index + 1 :]))
                yield ReplyEvent(" ".join(replies), reply.state)
                return
            if index + 1 < len(steps) and not _done(step, made[before:]):
                replies.append(_still_to_do(steps[index + 1 :]))
                break
        yield ReplyEvent(" ".join(replies))

    # --- adding and listing ---------------------------------------------------------------------

    async def _add(self, command: Command, turn: TurnInput) -> AsyncIterator[AgentEvent]:
        if not command.title:
            yield ReplyEvent(
                ASK_TITLE,
                DialogueState(awaiting=Awaiting.TITLE, command=PendingCommand(action="add_task")),
            )
            return
        items = command.items or (command,)
        # A task on several weekdays, or repeating in a way no task can, is not added (the
        # reply says how); a list's others are.
        if sum(not item.weekdays and not item.repeats for item in items) > self.max_tool_calls:
            yield over_bound(self.max_tool_calls)
            return
        replies = []
        for item in items:
            if item.weekdays or item.repeats:
                replies.append(_cannot_repeat(item))
                continue
            arguments = in_users_zone("add_task", _add_arguments(item), turn.tz)
            call = await turn.tools.call("add_task", arguments)
            yield ToolCallEvent(call)
            replies.append(_add_reply(item, call, now=turn.now, tz=turn.tz))
        yield ReplyEvent(" ".join(replies))

    async def _order(self, phrase: str, turn: TurnInput) -> AsyncIterator[AgentEvent]:
        """ "buy milk", "call the plumber": an order to oneself is a task to add, unless a
        pending task already says it (then adding it again or ticking it off are both
        plausible, and the user is asked)."""
        call = await turn.tools.call("list_tasks", {"status": "pending", "q": phrase})
        yield ToolCallEvent(call)
        if not call.ok:
            yield ReplyEvent(_tool_trouble(call, "look up your tasks"))
            return
        if _tasks(call):
            yield _clarify(Command(Intent.CLARIFY, title=phrase, options=(Intent.ADD, Intent.FACT)))
            return
        async for event in self._add(understand(f"add {phrase}", now=turn.now, tz=turn.tz), turn):
            yield event

    async def _notification(self, command: Command, turn: TurnInput) -> AsyncIterator[AgentEvent]:
        """ "remind me again in 10 minutes", "dismiss it", "got it": the latest unread reminder
        notification, snoozed or marked read. With none unread, "got it" is only thanks."""
        call = await turn.tools.call("list_notifications", {"unread_only": True, "limit": 1})
        yield ToolCallEvent(call)
        if not call.ok:
            yield ReplyEvent(_tool_trouble(call, "look up your reminders"))
            return
        latest = next(iter(_tasks(call)), None)
        if latest is None or not isinstance(latest.get("id"), int):
            if command.intent is Intent.DISMISS and command.title == _GOT_IT_MARK:
                yield ReplyEvent(THANKS)
            else:
                yield ReplyEvent("You have no unread reminders, so there is nothing to do.")
            return
        title = str(latest.get("task_title") or "")
        if command.intent is Intent.SNOOZE:
            minutes = command.minutes or 10
            arguments = {"notification_id": latest["id"], "minutes": minutes}
            done = await turn.tools.call("snooze_notification", arguments)
            yield ToolCallEvent(done)
            if not done.ok:
                yield ReplyEvent(_tool_trouble(done, "snooze that reminder"))
                return
            yield ReplyEvent(f"OK, I'll remind you about “{title}” again in {_span(minutes)}.")
            return
        done = await turn.tools.call("dismiss_notification", {"notification_id": latest["id"]})
        yield ToolCallEvent(done)
        if not done.ok:
            yield ReplyEvent(_tool_trouble(done, "dismiss that reminder"))
            return
        yield ReplyEvent(f"OK, I dismissed the reminder about “{title}”.")

    async def _list(self, command: Command, turn: TurnInput) -> AsyncIterator[AgentEvent]:
        if command.asks is not None and command.ref is not None:
            async for event in self._answer_about(command, command.ref, turn):
                yield event
            return
        filters = command.filters
        call = await turn.tools.call("list_tasks", filters.arguments())
        yield ToolCallEvent(call)
        if not call.ok:
            yield ReplyEvent(_tool_trouble(call, "look up your tasks"))
            return
        tasks = _tasks(call)
        what = _list_label(command)
        if not tasks:
            yield ReplyEvent(_empty_list(filters, what))
            return
        lines = [_task_line(task, now=turn.now, tz=turn.tz) for task in tasks[:LIST_LINES]]
        if len(tasks) > LIST_LINES:
            lines.append(f"…and {len(tasks) - LIST_LINES} more.")
        count = f"{len(tasks)} {what}" if len(tasks) != 1 else f"1 {_singular(what)}"
        if command.count:
            yield ReplyEvent(f"You have {count}:\n" + "\n".join(lines))
            return
        yield ReplyEvent(f"Here {'are' if len(tasks) != 1 else 'is'} {count}:\n" + "\n".join(lines))

    async def _answer_about(
        self, command: Command, ref: TaskRef, turn: TurnInput
    ) -> AsyncIterator[AgentEvent]:
        """ "when is the dentist", "did I pay the bill?": read-only, from the task found.
        A task named by its number (or "it") is read by its id: a listing holds only the
        newest tasks."""
        asks = command.asks or ""
        if ref.ids or ref.pronoun:
            ids = list(dict.fromkeys(ref.ids)) or [m.id for m in last_mentioned(turn.history)]
            if len(ids) > self.max_tool_calls:
                yield over_bound(self.max_tool_calls)
                return
            reading = _Reading()
            async for event in self._read(ids, turn, reading):
                yield event
            if reading.reply is not None:
                yield reading.reply
                return
            found = [reading.tasks[i] for i in ids if i in reading.tasks]
            if reading.missing:
                missing = _not_found(_join([f"task {i}" for i in reading.missing]))
                parts = (_about_several(found, asks, turn), missing)
                yield ReplyEvent("\n".join(part for part in parts if part))
                return
        else:
            words = ref.title or ""
            # "did I pay the bill": "bill" alone may name the task too, and a search for a
            # piece of it finds every task "pay the bill" matches as well.
            rest = words.partition(" ")[2] if command.asks == "done" else ""
            searched = rest if search_term(rest) is not None else words
            found = []
            for arguments in (_title_search(searched, "all"), {"status": "all"}):
                call = await turn.tools.call("list_tasks", arguments)
                yield ToolCallEvent(call)
                if not call.ok:
                    yield ReplyEvent(_tool_trouble(call, "look up your tasks"))
                    return
                tasks = {t["id"]: t for t in _tasks(call) if isinstance(t.get("id"), int)}
                mentions = _mentions(call)
                matches = match_title(words, mentions)
                if not matches and rest:
                    matches = match_title(rest, mentions)
                found = [tasks[m.id] for m in matches]
                # Found, or nothing the search missed (as in ``_resolve``) to look for.
                if found or not self._can_look_again(arguments.get("q"), 1):
                    break
        if not found:
            yield ReplyEvent(
                f"I couldn't find a task matching “{ref.title or 'that'}”. Say “show my "
                "tasks” to see what's on your list."
            )
            return
        yield ReplyEvent(_about_several(found, asks, turn))

    def _can_look_again(self, searched: str | None, made: int) -> bool:
        """Whether a listing without the search follows one that searched for ``searched``
        (None: nothing was searched for, so the listing had every task it could): after the
        ``made`` calls of the lookup, that listing and a call to act on what it finds must
        fit the turn's bound."""
        return searched is not None and made + 2 <= self.max_tool_calls

    async def _read(
        self, task_ids: Sequence[int], turn: TurnInput, into: _Reading
    ) -> AsyncIterator[AgentEvent]:
        """Each task by its id (``get_task``, one call a task), into ``into``; a failure
        other than "not found" stops the reading with the reply that says so."""
        for task_id in task_ids:
            call = await turn.tools.call("get_task", {"task_id": task_id})
            yield ToolCallEvent(call)
            if call.ok and isinstance(call.result, dict):
                into.tasks[task_id] = call.result
            elif call.code == "not_found":
                into.missing.append(task_id)
            else:
                into.reply = ReplyEvent(_tool_trouble(call, "look up that task"))
                return

    # --- completion stated as a fact ------------------------------------------------------------

    async def _fact(self, command: Command, turn: TurnInput) -> AsyncIterator[AgentEvent]:
        """ "I bought the groceries": the pending task whose title has the statement's meaning
        words (stems) is completed; several get a choice, none an honest answer. The object's
        words are searched for among all the pending tasks (list_tasks's ``q``, as for a
        title); a match on the verb alone, or a title the search cannot fold, is looked for
        among the newest pending tasks."""
        fact = command.fact or ""
        _, _, rest = fact.partition(" ")
        wanted = stems(rest)
        matches: list[TaskMention] = []
        by_object = False
        for arguments in (_title_search(rest, "pending"), {"status": "pending"}):
            call = await turn.tools.call("list_tasks", arguments)
            yield ToolCallEvent(call)
            if not call.ok:
                yield ReplyEvent(_tool_trouble(call, "look up your tasks"))
                return
            matches = match_fact(fact, _mentions(call))
            # Every match has the object's words, not only the verb: the ones a search finds.
            by_object = bool(wanted) and all(wanted <= stems(m.title) for m in matches)
            if (matches and by_object) or not self._can_look_again(arguments.get("q"), 1):
                break
        if matches and not by_object:
            yield _which_one(matches, None, PendingCommand(action="complete_task"))
        elif len(matches) == 1:
            complete = PendingCommand(action="complete_task")
            async for event in self._run_on(complete, matches[0], turn):
                yield event
        elif matches:
            yield _which_one(matches, None, PendingCommand(action="complete_task"))
        else:
            yield ReplyEvent(
                f"Nice! I didn't find a pending task that matches “{fact}”, so nothing was "
                "changed. Say “show my tasks” to see your list."
            )

    # --- undo -----------------------------------------------------------------------------------

    async def _undo(self, turn: TurnInput) -> AsyncIterator[AgentEvent]:
        """Revert the previous turn's changes, the latest first: a completion is reopened, a
        reopening completed again, an added task deleted (several added tasks after a yes, as
        any several deleted: "add milk, eggs and bread" then "undo"). A deletion or an edit
        cannot be undone here, nor a turn that made one."""
        changes = last_changes(turn.history)
        if not changes:
            yield ReplyEvent(NOTHING_TO_UNDO)
            return
        undos = [undo for change in changes if (undo := _undoing(change)) is not None]
        if len(undos) < len(changes):
            yield ReplyEvent(
                "Sorry, I can't undo that one: I can undo a completion or a task I just added. "
                "You can change the task again, e.g. “rename task 3 to ...”."
            )
            return
        if len(undos) > 1 and all(command.action == "delete_task" for command, _ in undos):
            # Tasks the turn added go as any several tasks do: listed, after a yes.
            yield _confirmation("delete_tasks", [task for _, task in reversed(undos)])
            return
        if len(undos) > self.max_tool_calls:
            yield over_bound(self.max_tool_calls)
            return
        replies = []
        for command, task in undos:
            async for event in self._run_on(command, task, turn):
                if isinstance(event, ReplyEvent):
                    replies.append(event.text)
                else:
                    yield event
        yield ReplyEvent(" ".join(replies))

    # --- changing existing tasks ----------------------------------------------------------------

    async def _change(self, command: Command, turn: TurnInput) -> AsyncIterator[AgentEvent]:
        ref = command.ref
        assert ref is not None
        pending = pending_command(command)
        if ref.bulk:
            async for event in self._bulk(command, ref, turn.tools):
                yield event
            return
        resolution = _Resolution()
        looked_up = 0
        async for event in self._resolve(command, ref, turn, resolution, pending):
            looked_up += 1
            yield event
        if resolution.reply is not None:
            yield resolution.reply
            return
        if command.chore is not None and len(resolution.tasks) == 1:
            asked = _chore_question(command, resolution.tasks[0])
            if asked is not None:
                yield asked
                return
        # A move by a span or to a day alone, or a tag added or removed, reads each task first,
        # unless this turn listed it.
        reads = _reads_current(pending) and not resolution.listed
        lookup = len(resolution.tasks) if reads else 0
        if looked_up + lookup + len(resolution.tasks) > self.max_tool_calls:
            yield over_bound(self.max_tool_calls)
            return
        if pending.action == "update_task" and not pending.arguments:
            task = resolution.tasks[0]
            yield ReplyEvent(
                f"Sure — what should task {task.id} be called instead?",
                DialogueState(
                    awaiting=Awaiting.TITLE,
                    candidates=(task.id,),
                    command=PendingCommand(action="update_task"),
                ),
            )
            return
        note = _cut_note(command) if pending.action == "update_task" else ""
        apply = self._apply(pending, resolution.tasks, turn, listed=resolution.listed, note=note)
        async for event in apply:
            yield event

    async def _bulk(
        self, command: Command, ref: TaskRef, tools: Tools
    ) -> AsyncIterator[AgentEvent]:
        """Every task the words describe, listed, and a question: only a "yes" to exactly
        these tasks runs the bulk tool (the chat service checks that too)."""
        action = _BULK_ACTIONS.get(command.intent)
        if action is None:
            yield ReplyEvent(
                "Sorry, I can only complete or delete several tasks at once. Tell me which "
                "task to change, for example “rename task 3 to ...”."
            )
            return
        filters = ref.filters or ListFilters()
        if action == "complete_tasks" and filters.status == "all":
            filters = replace(filters, status="pending")
        call = await tools.call("list_tasks", {**filters.arguments(), "limit": BULK_LIST_LIMIT})
        yield ToolCallEvent(call)
        if not call.ok:
            yield ReplyEvent(_tool_trouble(call, "look up those tasks"))
            return
        tasks = _mentions(call)
        if not tasks:
            yield ReplyEvent("There are no tasks like that, so there is nothing to change.")
            return
        if len(tasks) > MAX_CANDIDATES:
            yield ReplyEvent(
                f"That is more than {MAX_CANDIDATES} tasks, more than I change at once. "
                "Please narrow it down, e.g. by a tag."
            )
            return
        yield _confirmation(action, tasks)

    async def _confirm(
        self, state: DialogueState, command: Command, turn: TurnInput
    ) -> AsyncIterator[AgentEvent]:
        assert state.command is not None
        if not is_yes(turn.message):
            if command.intent in {Intent.UNKNOWN, Intent.CLARIFY, Intent.THANKS} or re.match(
                r"^\W*(?:no|nope|nah|cancel|stop|don'?t|do not|never ?mind|wait|leave)\b",
                turn.message,
                re.IGNORECASE,
            ):
                yield ReplyEvent(CANCELLED)
                return
            async for event in self._act(command, turn):
                yield event
            return
        ids = list(state.candidates)
        call = await turn.tools.call(state.command.action, {"task_ids": ids})
        yield ToolCallEvent(call)
        if not call.ok:
            yield ReplyEvent(_tool_trouble(call, "change those tasks"))
            return
        done = "deleted" if state.command.action == "delete_tasks" else "marked as complete"
        results = call.result.get("results") if isinstance(call.result, dict) else None
        if len(ids) == 1 and isinstance(results, list) and isinstance(results[0], dict):
            # A question about one task ("Shall I delete it?"): the answer names it.
            task = TaskMention(ids[0], str(results[0].get("title") or ""))
            yield ReplyEvent(f"Done — I {done} {_named(task)}.")
            return
        yield ReplyEvent(f"Done — I {done} {_tasks_count(len(ids))}.")

    async def _shift(
        self, tasks: Sequence[TaskMention], minutes: int, turn: TurnInput, *, listed: bool
    ) -> AsyncIterator[AgentEvent]:
        """ "push the report back a day": each task's due date, moved by ``minutes``. The due
        date is the todo service's: from this turn's listing, or each task read by its id."""
        current = _Current()
        async for event in self._current(tasks, turn, current, listed=listed):
            yield event
        if current.reply is not None:
            yield current.reply
            return
        found = current.tasks
        way = "later" if minutes > 0 else "earlier"
        replies = []
        for task in tasks:
            known = found.get(task.id)
            if known is None:
                replies.append(_not_found(f"task {task.id}"))
                continue
            named = _named(known)
            if not known.due_at:
                replies.append(
                    f"{named} has no due date, so I can't move it {way}; nothing was changed. "
                    f"Give it one first, for example “make task {known.id} due friday”."
                )
                continue
            due = _shifted(known.due_at, minutes, turn.tz)
            if due is None:
                replies.append(
                    f"{named} can't be moved {_span(abs(minutes))} {way}: the day would be "
                    "outside the calendar. Nothing was changed."
                )
                continue
            change = PendingCommand(action="update_task", arguments={"due_at": due})
            call = await turn.tools.call("update_task", {"task_id": known.id, "due_at": due})
            yield ToolCallEvent(call)
            replies.append(_change_reply(change, known, call, now=turn.now, tz=turn.tz))
        yield ReplyEvent(" ".join(replies))

    async def _run_on(
        self, pending: PendingCommand, task: TaskMention, turn: TurnInput
    ) -> AsyncIterator[AgentEvent]:
        """``pending`` on one task: the one picked, completed by a fact, or undone."""
        async for event in self._apply(pending, [task], turn, listed=False):
            yield event

    async def _apply(
        self,
        pending: PendingCommand,
        tasks: Sequence[TaskMention],
        turn: TurnInput,
        *,
        listed: bool,
        note: str = "",
    ) -> AsyncIterator[AgentEvent]:
        """``pending`` run on each task, then one reply (``note`` after each change made). A
        move by a span, or to a day or a time alone (which keeps the rest of the task's due
        date), first needs each task's due date as the todo service holds it, and a tag added
        or removed its tags: from this turn's listing (``listed``), or each task read by its
        id."""
        shift = pending.arguments.get("shift_minutes")
        if isinstance(shift, int):
            async for event in self._shift(tasks, shift, turn, listed=listed):
                yield event
            return
        arguments = {k: v for k, v in pending.arguments.items() if k not in _READS_TASK}
        given = pending.arguments.get("due_given")
        added = list(pending.arguments.get("added_tags") or ())
        removed = list(pending.arguments.get("removed_tags") or ())
        current = _Current(tasks={task.id: task for task in tasks})
        if _reads_current(pending):
            async for event in self._current(tasks, turn, current, listed=listed):
                yield event
            if current.reply is not None:
                yield current.reply
                return
        replies = []
        for task in tasks:
            known = current.tasks.get(task.id)
            if known is None:
                replies.append(_not_found(f"task {task.id}"))
                continue
            changes = dict(arguments)
            if given == "hour" and known.due_at is None:
                # "make it 3" for a task without a due date: a number, maybe no time at all.
                replies.append(
                    f"Task {known.id} has no due date, so I changed nothing: to give it one, "
                    f"say e.g. “make it due tomorrow at "
                    f"{datetime.fromisoformat(str(changes['due_at'])):%H:%M}”."
                )
                continue
            if isinstance(given, str) and known.due_at is not None:
                changes["due_at"] = _keep_rest_of_due(
                    str(changes["due_at"]), given, known.due_at, turn.tz
                )
            if added or removed:
                tags = _retagged(known.tags, added, removed)
                unchanged = _tags_unchanged(known, tags, added, removed)
                if unchanged is not None:
                    replies.append(unchanged)
                    continue
                changes["tags"] = tags
            call = await turn.tools.call(pending.action, {"task_id": known.id, **changes})
            yield ToolCallEvent(call)
            done = PendingCommand(action=pending.action, arguments={**pending.arguments, **changes})
            reply = _change_reply(done, known, call, now=turn.now, tz=turn.tz)
            replies.append(reply + (note if call.ok else ""))
        yield ReplyEvent(" ".join(replies))

    async def _current(
        self, tasks: Sequence[TaskMention], turn: TurnInput, into: _Current, *, listed: bool
    ) -> AsyncIterator[AgentEvent]:
        """Each task with its due date and tags as the todo service holds them, into ``into``:
        as this turn's listing gave them (``listed``), or read by its id (``get_task``)."""
        if listed:
            into.tasks = {task.id: task for task in tasks}
            return
        reading = _Reading()
        async for event in self._read([task.id for task in tasks], turn, reading):
            yield event
        into.reply = reading.reply
        into.tasks = {task_id: _mention(task_id, t) for task_id, t in reading.tasks.items()}

    async def _resolve(
        self,
        command: Command,
        ref: TaskRef,
        turn: TurnInput,
        into: _Resolution,
        pending: PendingCommand,
    ) -> AsyncIterator[AgentEvent]:
        """Which task(s) ``ref`` means: ids as given, "it" from history, titles via list_tasks."""
        if ref.ids:
            into.tasks = [TaskMention(i, "") for i in ref.ids]
            return
        if ref.pronoun or ref.ordinal is not None:
            mentioned = last_mentioned(turn.history)
            if ref.ordinal is not None and len(mentioned) > 1:
                index = ref.ordinal - 1 if ref.ordinal > 0 else len(mentioned) - 1
                if 0 <= index < len(mentioned):
                    into.tasks = [mentioned[index]]
                    return
            if len(mentioned) == 1:
                into.tasks = mentioned
            elif mentioned:
                into.reply = _which_one(mentioned, None, pending)
            else:
                into.reply = ReplyEvent(
                    NO_REFERENCE, DialogueState(awaiting=Awaiting.CHOICE, command=pending)
                )
            return

        words = ref.title or ""
        status = {Intent.COMPLETE: "pending", Intent.REOPEN: "completed"}.get(command.intent, "all")
        action = _BULK_ACTIONS.get(command.intent)
        # Several names ("call mom and buy milk"): each is searched for, and every task the
        # whole phrase matches is among the tasks found for each of them.
        names = ref.titles if len(ref.titles) > 1 and action is not None else (words,)
        if len(names) > self.max_tool_calls:
            into.reply = over_bound(self.max_tool_calls)
            return
        found: dict[int, TaskMention] = {}
        for name in names:
            call = await turn.tools.call("list_tasks", _title_search(name, status))
            yield ToolCallEvent(call)
            if not call.ok:
                into.reply = ReplyEvent(_tool_trouble(call, "look up that task"))
                return
            for task in _mentions(call):
                found.setdefault(task.id, task)
        candidates = list(found.values())
        matches = match_title(words, candidates)
        if not matches and len(names) == 1 and self._can_look_again(search_term(words), 1):
            # The search is by substring, which folds no "ß" or full-width letter as the stems
            # do ("STRASSE" finds no "Straße"): the newest tasks are matched by stems as well.
            call = await turn.tools.call("list_tasks", {"status": status})
            yield ToolCallEvent(call)
            if not call.ok:
                into.reply = ReplyEvent(_tool_trouble(call, "look up that task"))
                return
            candidates = _mentions(call)
            matches = match_title(words, candidates)
        into.listed = True
        kind = {"pending": "pending task", "completed": "completed task"}.get(status, "task")
        # Several names ("call mom and buy milk") are one task only when it is that title
        # ("Fish and chips"): a task that merely holds every word ("Call mom to buy milk") is
        # not one the user named, and would be changed with no question asked.
        whole = bool(matches) and label_key(matches[0].title) == label_key(words)
        if len(names) > 1 and action is not None and not whole:
            into.reply = _several(action, ref.titles, candidates, kind)
        elif len(matches) == 1:
            into.tasks = matches
        elif matches:
            into.reply = _which_one(matches, words, pending)
        elif command.chore is not None:
            into.reply = _offer_chore(words, command)
        else:
            into.reply = ReplyEvent(
                f"I couldn't find a {kind} matching “{words}”. "
                "Say “show my tasks” to see what's on your list."
            )


def _keep_rest_of_due(due: str, given: str, current: str, tz: ZoneInfo) -> str:
    """The new due moment ``due``, keeping what the words did not name (``given``: "date" or
    "time") of the ``current`` one: its time of day for "move it to Friday", its day for
    "make it 4pm"."""
    try:
        new = datetime.fromisoformat(due).astimezone(tz)
        stored = datetime.fromisoformat(current)
    except ValueError:
        return due
    # Past the calendar's end in this zone: its day as the API wrote it, in UTC.
    old = local_or_as_given(stored, tz)
    if given == "date":
        new = new.replace(hour=old.hour, minute=old.minute, second=0, microsecond=0)
    elif given in {"time", "hour"}:
        new = new.replace(year=old.year, month=old.month, day=old.day)
    return new.isoformat()


# Arguments of a pending edit that are no tool's: each needs the task as the todo service
# holds it (``_apply``). The part of a new due date the words named ("date" or "time", the
# rest of the task's own being kept), a move by a span, and tags joining or leaving the
# task's own.
_READS_TASK = ("due_given", "shift_minutes", "added_tags", "removed_tags")


def _reads_current(pending: PendingCommand) -> bool:
    """Whether ``pending`` needs each task as the todo service holds it (``_READS_TASK``)."""
    return not pending.arguments.keys().isdisjoint(_READS_TASK)


def _retagged(current: Sequence[str], added: Sequence[str], removed: Sequence[str]) -> list[str]:
    """A task's tags ``current`` with ``added`` joined at the end and ``removed`` taken out,
    each compared in the form the todo service stores (``label_key``)."""
    gone = {label_key(tag) for tag in removed}
    tags = dict.fromkeys(label_key(tag) for tag in (*current, *added))
    return [tag for tag in tags if tag not in gone]


def _tags_unchanged(
    task: TaskMention, tags: Sequence[str], added: Sequence[str], removed: Sequence[str]
) -> str | None:
    """Why ``task`` keeps its tags rather than take ``tags``, or None when it takes them: the
    tags are the ones it has, or more than a task can hold."""
    if len(tags) > TAGS_MAX:
        return (
            f"{_named(task)} has {len(task.tags)} tags and a task can have at most {TAGS_MAX}, "
            f"so I didn't add {_hashes(added)}; nothing was changed. Remove one first, e.g. "
            f"“untag task {task.id} #{task.tags[0]}”."
        )
    if list(tags) != list(task.tags):
        return None
    if removed:
        return f"{_named(task)} has no tag {_hashes(removed)}, so nothing was changed."
    return f"{_named(task)} is already tagged {_hashes(added)}, so nothing was changed."


def _shifted(current: str, minutes: int, tz: ZoneInfo) -> str | None:
    """``current`` (as the tools give it) moved by ``minutes``: whole days on the user's
    clock, so 09:00 stays 09:00 across a change of daylight saving; None if unreadable."""
    try:
        stored = datetime.fromisoformat(current)
        if minutes % 1440 == 0:
            moved = local_or_as_given(stored, tz) + timedelta(days=minutes // 1440)
        else:
            moved = local_or_as_given(stored + timedelta(minutes=minutes), tz)
    except (ValueError, OverflowError):
        return None
    return moved.isoformat()


def pending_command(command: Command) -> PendingCommand:
    """The tool call ``command`` makes on each task it refers to, without the task id."""
    if command.intent is Intent.COMPLETE:
        return PendingCommand(action="complete_task")
    if command.intent is Intent.REOPEN:
        return PendingCommand(action="complete_task", arguments={"completed": False})
    if command.intent is Intent.DELETE:
        return PendingCommand(action="delete_task")
    arguments: dict[str, Any] = {}
    if command.title is not None:
        arguments["title"] = command.title[:TITLE_MAX]
    if command.description is not None:
        arguments["description"] = command.description[:DESCRIPTION_MAX]
    if command.priority is not None:
        arguments["priority"] = command.priority
    if command.tags:
        arguments["tags"] = list(command.tags)
    if command.added_tags:
        # Not a tool argument: the task's own tags are read first (``_apply``).
        arguments["added_tags"] = list(command.added_tags)
    if command.removed_tags:
        arguments["removed_tags"] = list(command.removed_tags)
    if command.due_at is not None:
        arguments["due_at"] = command.due_at.isoformat()
        if command.due_given != "both":
            # Not a tool argument: the part of the due date the words named, the rest of the
            # task's own being kept (``_apply``).
            arguments["due_given"] = command.due_given
    if command.clear:
        arguments["clear"] = list(command.clear)
    if command.reminders is not None:
        arguments["reminders"] = [reminder.argument() for reminder in command.reminders]
    if command.shift_minutes is not None:
        # Not a tool argument: the agent reads it when the user picks the task (``_shift``).
        arguments["shift_minutes"] = command.shift_minutes
    return PendingCommand(action="update_task", arguments=arguments)


def _add_arguments(command: Command) -> dict[str, Any]:
    arguments: dict[str, Any] = {"title": (command.title or "")[:TITLE_MAX]}
    if command.description:
        arguments["description"] = command.description[:DESCRIPTION_MAX]
    if command.priority:
        arguments["priority"] = command.priority
    if command.tags:
        arguments["tags"] = list(command.tags)
    if command.due_at:
        arguments["due_at"] = command.due_at.isoformat()
    if command.recurrence:
        arguments["recurrence"] = command.recurrence
    if command.reminders:
        arguments["reminders"] = [reminder.argument() for reminder in command.reminders]
    return arguments


def _add_reply(command: Command, call: ToolCall, *, now: datetime, tz: ZoneInfo) -> str:
    if not call.ok:
        return _tool_trouble(call, "add that task")
    result = call.result if isinstance(call.result, dict) else {}
    title = result.get("title", command.title)
    details = _details(command, now=now, tz=tz)
    task_id = result.get("task_id")
    number = f" as task {task_id}" if task_id is not None else ""
    return f"Done! I added “{title}” to your list{number}{details}.{_cut_note(command)}"


def _change_reply(
    pending: PendingCommand, task: TaskMention, call: ToolCall, *, now: datetime, tz: ZoneInfo
) -> str:
    action, arguments = pending.action, pending.arguments
    if not call.ok:
        verb = {"complete_task": "complete", "delete_task": "delete"}.get(action, "update")
        if arguments.get("completed") is False:
            verb = "reopen"
        return _tool_trouble(call, f"{verb} task {task.id}")
    result = call.result if isinstance(call.result, dict) else {}
    named = _named(replace(task, title=result.get("title") or task.title))
    if action == "complete_task" and arguments.get("completed") is False:
        return f"OK, I marked {named} as not done."
    if action == "complete_task":
        return f"Nice work! I marked {named} as complete."
    if action == "delete_task":
        return f"I deleted {named}."
    changes = []
    if "title" in arguments:
        changes.append(f"renamed it to “{arguments['title']}”")
    if "description" in arguments:
        changes.append("updated its description")
    if "priority" in arguments:
        changes.append(f"set its priority to {arguments['priority']}")
    if arguments.get("added_tags") or arguments.get("removed_tags"):
        kept = arguments.get("tags") or []
        tags = f" (its tags: {_hashes(kept)})" if kept != arguments.get("added_tags") else ""
        if arguments.get("added_tags"):
            changes.append(f"tagged it {_hashes(arguments['added_tags'])}{tags}")
        else:
            tag = "tags" if len(arguments["removed_tags"]) > 1 else "tag"
            changes.append(f"removed the {tag} {_hashes(arguments['removed_tags'])}{tags}")
    elif arguments.get("tags"):
        changes.append(f"set its tags to {_hashes(arguments['tags'])}")
    if "due_at" in arguments.get("clear", ()):
        changes.append("removed its due date")
    if "description" in arguments.get("clear", ()):
        changes.append("removed its description")
    if "due_at" in arguments:
        with contextlib.suppress(ValueError, TypeError):
            due = datetime.fromisoformat(str(arguments["due_at"]))
            changes.append(f"set it due {describe(due, now=now, tz=tz)}")
    if arguments.get("reminders") == []:
        changes.append("removed its reminders, so I won't remind you about it")
    for reminder in arguments.get("reminders") or ():
        words = _reminder_words(reminder, now=now, tz=tz).replace(
            "I'll remind you", "will remind you"
        )
        changes.append(f"set a reminder: I {words}")
    if not changes:
        return f"Updated {named}."
    return f"Updated task {task.id}: I {_join(changes)}."


# --- reading the conversation back ---------------------------------------------------------------


def waiting_for(history: Sequence[HistoryMessage]) -> DialogueState:
    """What the conversation's last message waits for (nothing unless it is the assistant's)."""
    if not history or history[-1].role != "assistant":
        return NOTHING
    return history[-1].state


def last_mentioned(history: Sequence[HistoryMessage]) -> list[TaskMention]:
    """The task(s) the conversation last talked about: the latest turn's that named any.

    The tasks a turn added/changed/completed/deleted (all of them, in the order made: "add
    milk, eggs and bread" then "make it high priority" asks which), or the tasks of the latest
    listing. Read from the stored tool calls, so it survives restarts like everything else.
    """
    for message in reversed(history):
        if message.role != "assistant":
            continue
        if message.state.candidates:
            titles = _titles(message)
            return [TaskMention(i, titles.get(i, "")) for i in message.state.candidates]
        changed = {
            call.result["task_id"]: str(call.result.get("title", ""))
            for call in _task_changes(message)
            if isinstance(call.result, dict) and isinstance(call.result.get("task_id"), int)
        }
        if changed:
            return [TaskMention(task_id, title) for task_id, title in changed.items()]
        for call in reversed(message.tool_calls):
            if not call.ok:
                continue
            if call.name in NOTIFICATION_TOOLS and isinstance(call.result, dict):
                # A reminder just snoozed or dismissed: "it" is its task.
                task_id = call.result.get("task_id")
                if isinstance(task_id, int):
                    return [TaskMention(task_id, str(call.result.get("task_title", "")))]
            if call.name == "list_tasks":
                tasks = _mentions(call)
                if tasks:
                    return tasks
    return []


def _undoing(change: ToolCall) -> tuple[PendingCommand, TaskMention] | None:
    """The command that reverts ``change`` and its task; None when it cannot be undone."""
    result = change.result if isinstance(change.result, dict) else {}
    task_id = result.get("task_id") if change.name == "add_task" else None
    task_id = task_id if task_id is not None else change.arguments.get("task_id")
    if not isinstance(task_id, int):
        return None
    task = TaskMention(task_id, str(result.get("title", "")))
    if change.name == "complete_task":
        reopen = change.arguments.get("completed", True) is not False
        return PendingCommand(action="complete_task", arguments={"completed": not reopen}), task
    if change.name == "add_task":
        return PendingCommand(action="delete_task"), task
    return None


def last_changes(history: Sequence[HistoryMessage]) -> list[ToolCall]:
    """The previous turn's own successful changes of single tasks, the latest first.

    Only the turn right before: "undo" after a question, or after a turn that changed
    nothing, has nothing to undo, rather than reaching back to a change made turns ago."""
    if not history or history[-1].role != "assistant":
        return []
    return _task_changes(history[-1])[::-1]


def _task_changes(message: HistoryMessage) -> list[ToolCall]:
    """The successful changes of single tasks a reply's turn made, in the order made."""
    return [call for call in message.tool_calls if call.ok and call.name in TASK_RESULT_TOOLS]


def _titles(message: HistoryMessage) -> dict[int, str]:
    return {t.id: t.title for call in message.tool_calls if call.ok for t in _mentions(call)}


def _choose(
    state: DialogueState, command: Command, message: str, history: Sequence[HistoryMessage]
) -> TaskMention | None:
    """The one candidate a message answering "which one?" picks, if it picks one."""
    if command.intent not in {Intent.ANSWER, Intent.UNKNOWN, Intent.CLARIFY, Intent.LIST}:
        return None
    if command.asks is not None or command.unread_when is not None:
        # "when is the team meeting?", "make the team meeting due after lunch": about one of
        # the tasks offered, but no choice of it for the pending command.
        return None
    titles = _titles(history[-1])
    candidates = [TaskMention(i, titles.get(i, "")) for i in state.candidates]
    ref = command.ref or read_ref(message)
    chosen: list[TaskMention] = []
    if ref is not None and ref.ids:
        if candidates:
            chosen = [c for c in candidates if c.id in ref.ids]
        else:
            chosen = [TaskMention(i, "") for i in ref.ids]
    elif ref is not None and ref.ordinal is not None and candidates:
        index = ref.ordinal - 1 if ref.ordinal > 0 else len(candidates) - 1
        chosen = [candidates[index]] if 0 <= index < len(candidates) else []
    elif ref is not None and ref.title:
        chosen = match_title(ref.title, candidates)
    return chosen[0] if len(chosen) == 1 else None


def _mentions(call: ToolCall) -> list[TaskMention]:
    if call.name != "list_tasks" or not isinstance(call.result, list):
        return []
    return [
        _mention(t["id"], t)
        for t in call.result
        if isinstance(t, dict) and isinstance(t.get("id"), int)
    ]


def _mention(task_id: int, task: dict[str, Any]) -> TaskMention:
    """Task ``task_id`` as list_tasks and get_task give it, with its due date and tags."""
    tags = task.get("tags")
    return TaskMention(
        task_id,
        str(task.get("title", "")),
        _text_or_none(task.get("due_at")),
        tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
    )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _tasks(call: ToolCall) -> list[dict[str, Any]]:
    return [t for t in call.result or [] if isinstance(t, dict)]


# --- matching titles -----------------------------------------------------------------------------

_STOP_WORDS = frozenset(
    {
        "the",
        "a",
        "an",
        "my",
        "to",
        "of",
        "for",
        "and",
        "one",
        "task",
        "about",
        "with",
        "on",
        "at",
        "in",
        "i",
        "it",
        "that",
        "this",
        "all",
        "some",
        "our",
        "your",
        "is",
        "was",
        "be",
        "from",
        "back",
        "up",
        "out",
        "off",
        "into",
        "over",
        "by",
        "finally",
        "just",
        "now",
        "today",
        "already",
        "stuff",
        "thing",
        "things",
    }
)
# Past tenses that do not end in -ed, read as their verb.
_IRREGULAR = {
    "bought": "buy",
    "paid": "pay",
    "sent": "send",
    "made": "make",
    "took": "take",
    "got": "get",
    "gotten": "get",
    "wrote": "write",
    "written": "write",
    "fed": "feed",
    "met": "meet",
    "went": "go",
    "gone": "go",
    "did": "do",
    "done": "do",
    "rang": "call",
    "phoned": "call",
    "ran": "run",
    "ate": "eat",
    "drove": "drive",
    "gave": "give",
    "brought": "bring",
    "sold": "sell",
    "found": "find",
    "left": "leave",
    "kept": "keep",
    "told": "tell",
    "spoke": "speak",
    "swept": "sweep",
    "hung": "hang",
    "put": "put",
    "read": "read",
    "set": "set",
    "cut": "cut",
    "mowed": "mow",
    "emptied": "empty",
    "tidied": "tidy",
    "studied": "study",
    "replied": "reply",
    "finished": "finish",
    "completed": "complete",
    "texted": "text",
    "mailed": "email",
    "emailed": "email",
}


def stem(word: str) -> str:
    """A word's stem for matching meaning, the same for "called" and "call", "groceries"
    and "grocery", "bought" and "buy" (not a dictionary: both sides are stemmed alike)."""
    word = word.casefold().strip("'").removesuffix("'s")
    if word in _IRREGULAR:
        word = _IRREGULAR[word]
    if (len(word) > 4 and word.endswith("ies")) or (len(word) > 4 and word.endswith("ied")):
        word = word[:-3] + "y"
    else:
        for suffix in ("ment", "ing", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
    word = word.removesuffix("e") if len(word) > 3 else word
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def _meaning_words(text: str) -> list[str]:
    # One form (``label_key``: NFKC, lower case) first: "é" as "e" and a combining accent
    # would be two words ("\w" is no mark); ``stem`` then folds case fully ("straße" is
    # "strasse").
    return [w for w in re.findall(r"[\w']+", label_key(text)) if w not in _STOP_WORDS]


def stems(text: str) -> set[str]:
    return {stem(w) for w in _meaning_words(text)}


# The longest search list_tasks takes (its ``q``, as long as a title).
SEARCH_MAX = 200


def search_term(words: str) -> str | None:
    """What list_tasks's search (``q``: a substring of the title or description) looks for
    so that it finds the tasks ``match_title(words, ...)`` can match: the longest start that
    the forms of one meaning word share ("stamp" for "buying stamps" finds "Buy stamps"). A
    stem is its word cut short (an ending, an "e" or a doubled letter dropped), but for
    "-ies" read as "-y": without that "y" it starts every form, an irregular one ("bought"
    for "buy", "met" for "meeting") aside. None when no word means anything ("the stuff")."""
    pieces = [stem(word).removesuffix("y") for word in _meaning_words(words)]
    longest = max(pieces, key=len, default="")
    # A title holding the whole word holds its start too.
    return longest[:SEARCH_MAX] or None


def _title_search(words: str, status: str) -> dict[str, str]:
    """The list_tasks arguments that find the tasks of ``status`` that ``words`` may name."""
    term = search_term(words)
    return {"status": status} if term is None else {"status": status, "q": term}


def match_title(words: str, candidates: Sequence[TaskMention]) -> list[TaskMention]:
    """Candidates whose title has every meaning word of ``words`` (compared by stems, not
    substrings); an exact title match wins over partial ones."""
    wanted = label_key(words)
    exact = [c for c in candidates if label_key(c.title) == wanted]
    if exact:
        return exact
    needed = stems(words)
    if not needed:
        return []
    return [c for c in candidates if needed <= stems(c.title)]


def match_fact(fact: str, candidates: Sequence[TaskMention]) -> list[TaskMention]:
    """Pending tasks a statement of fact ("bought the groceries") is about: every object
    word in the title; when several, those with the verb too, if that leaves fewer."""
    verb, _, rest = fact.partition(" ")
    objects = stems(rest)
    if not objects:  # "I bought the stuff": the tasks with that verb, to choose from
        return [c for c in candidates if stem(verb) in stems(c.title)]
    matches = [c for c in candidates if objects <= stems(c.title)]
    with_verb = [c for c in matches if stem(verb) in stems(c.title)]
    if matches:
        return with_verb if 0 < len(with_verb) < len(matches) else matches
    # Nothing has those words: a title with the same verb is a candidate, never completed
    # without asking (see ``_fact``).
    return [c for c in candidates if stem(verb) in stems(c.title)]


# --- wording -------------------------------------------------------------------------------------


def _which_one(
    tasks: Sequence[TaskMention], words: str | None, pending: PendingCommand
) -> ReplyEvent:
    about = f" matching “{words}”" if words else ""
    lines = "\n".join(f"• {t.id}: {t.title}" for t in tasks[:LIST_LINES])
    state = DialogueState(
        awaiting=Awaiting.CHOICE,
        candidates=tuple(t.id for t in tasks[:MAX_CANDIDATES]),
        command=pending,
    )
    return ReplyEvent(f"I found {_tasks_count(len(tasks))}{about}:\n{lines}\n{ASK_WHICH}", state)


def _tasks_count(count: int) -> str:
    """ "1 task", "3 tasks"."""
    return "1 task" if count == 1 else f"{count} tasks"


def _about(task: dict[str, Any], asks: str, *, now: datetime, tz: ZoneInfo) -> str:
    """One task's answer to "when is it due?" or "is it done?" ("done", "status")."""
    named = f"“{task.get('title', '')}” (task {task.get('id')})"
    due = task.get("due_at")
    when = None
    if isinstance(due, str):
        with contextlib.suppress(ValueError):
            when = describe(datetime.fromisoformat(due), now=now, tz=tz)
    if asks in {"done", "status"}:
        if task.get("completed"):
            return f"Yes, {named} is done."
        return f"No, {named} is not done yet" + (f"; it's due {when}." if when else ".")
    if when is None:
        return f"{named} has no due date."
    done = " (already done)" if task.get("completed") else ""
    return f"{named} is due {when}{done}."


def _about_several(tasks: Sequence[dict[str, Any]], asks: str, turn: TurnInput) -> str:
    """The answer about each task found: one line, or a list under a heading."""
    lines = [_about(task, asks, now=turn.now, tz=turn.tz) for task in tasks]
    if len(lines) <= 1:
        return "".join(lines)
    return f"I found {len(lines)} tasks like that:\n" + "\n".join(lines[:LIST_LINES])


def _named(task: TaskMention) -> str:
    """How a reply names a task: “Call mom” (task 3), or task 3 when its title is unknown."""
    return f"“{task.title}” (task {task.id})" if task.title else f"task {task.id}"


def _hashes(tags: Sequence[str]) -> str:
    return " ".join(f"#{tag}" for tag in tags)


def _not_found(named: str) -> str:
    """What a reply says of tasks named by number ("task 3", "task 3 and task 4") that are
    not the user's (or no more)."""
    return f"I couldn't find {named} on your list. Say “show my tasks” to see their numbers."


def _confirmation(action: str, tasks: Sequence[TaskMention]) -> ReplyEvent:
    """The question before a bulk change: the tasks listed; only a "yes" runs ``action``."""
    verb = "delete" if action == "delete_tasks" else "mark as complete"
    lines = "\n".join(f"• {t.id}: {t.title}" for t in tasks[:LIST_LINES])
    more = f"\n…and {len(tasks) - LIST_LINES} more." if len(tasks) > LIST_LINES else ""
    count = "this task" if len(tasks) == 1 else f"these {len(tasks)} tasks"
    return ReplyEvent(
        f"I'm about to {verb} {count}:\n{lines}{more}\nShall I go ahead? Reply “yes” to "
        "confirm; anything else cancels.",
        DialogueState(
            awaiting=Awaiting.CONFIRMATION,
            candidates=tuple(t.id for t in tasks),
            command=PendingCommand(action=action),
        ),
    )


def _chore_question(command: Command, task: TaskMention) -> ReplyEvent | None:
    """The question before deleting the one task that words which may name a chore found
    ("cancel my gym membership"), or None when the words name it beyond doubt. The task is
    that chore said again when its title holds every word of it, the verb too ("Cancel gym
    membership"). Words in doubt (``Command.doubt``) are asked about when said of the user's
    own thing, or of a thing the task's title is more than ("clear the table": Book a
    table)."""
    chore = command.chore or ""
    named = _named(task)
    state = DialogueState(
        awaiting=Awaiting.CONFIRMATION,
        candidates=(task.id,),
        command=PendingCommand(action="delete_tasks"),
    )
    if stems(chore) <= stems(task.title):
        return ReplyEvent(
            f"{named} is already on your list. Shall I delete it? Reply “yes” to delete it; "
            "anything else leaves it as it is.",
            state,
        )
    words = command.ref.title if command.ref is not None else None
    whole = words is not None and label_key(words) == label_key(task.title)
    if command.doubt is None or (command.doubt == "partial" and whole):
        return None
    shown, said = _chore_offered(command)
    return ReplyEvent(
        f"Do you mean the task {named}? Shall I delete it? Reply “yes” to delete it; anything "
        f"else leaves it as it is. To add “{shown}” as a new task instead, say “add {said}”.",
        state.model_copy(update={"chore": said}),
    )


def _chore_offered(command: Command) -> tuple[str, str]:
    """The chore a delete's words may name, in the user's own words ("cancel my 3pm call"):
    as a task's name, and as said after "add"."""
    words = command.chore_said or command.chore or ""
    said = words if words[:2].isupper() else words[:1].lower() + words[1:]
    return said[:1].upper() + said[1:], said


def _offer_chore(words: str, command: Command) -> ReplyEvent:
    """No task matches words that may name a chore ("throw out old milk"): nothing deleted,
    and how to add the chore as a new task."""
    shown, said = _chore_offered(command)
    return ReplyEvent(
        f"I couldn't find a task matching “{words}”, so I deleted nothing. If “{shown}” is "
        f"something to do, say “add {said}” and I'll add it as a new task.",
        DialogueState(chore=said),
    )


def _several(
    action: str, titles: Sequence[str], tasks: Sequence[TaskMention], kind: str
) -> ReplyEvent:
    """ "mark call mom and buy milk as done": each name's one task, changed only after a yes
    (more than one task not named by number needs it). A name that matches no task, or
    several, changes nothing: the reply says which, so no task the user did not name is
    touched."""
    chosen: dict[int, TaskMention] = {}
    missing: list[str] = []
    unclear: list[tuple[str, list[TaskMention]]] = []
    for words in titles:
        found = match_title(words, tasks)
        if len(found) == 1:
            chosen.setdefault(found[0].id, found[0])
        elif found:
            unclear.append((words, found))
        else:
            missing.append(words)
    if missing:
        names = _join([f"“{words}”" for words in missing])
        return ReplyEvent(
            f"I couldn't find a {kind} matching {names}, so I changed nothing. Say “show my "
            "tasks” to see what's on your list."
        )
    if unclear:
        lines = "\n".join(
            f"“{words}” could be:\n" + "\n".join(f"• {t.id}: {t.title}" for t in found)
            for words, found in unclear
        )
        verb = "delete" if action == "delete_tasks" else "complete"
        ids = [*chosen, *(found[0].id for _, found in unclear)]
        example = f"{verb} tasks {_join([str(i) for i in ids])}"
        return ReplyEvent(
            f"{lines}\nWhich ones do you mean? I changed nothing. Tell me their numbers, for "
            f"example “{example}”."
        )
    return _confirmation(action, list(chosen.values()))


def _clarify(command: Command) -> ReplyEvent:
    """A question naming what the message could mean, instead of a guess."""
    said = command.title or ""
    options = [_OPTION_WORDS[o] for o in command.options if o in _OPTION_WORDS]
    if command.ref is not None and command.ref.title and not options:
        said = command.ref.title
        options = ["mark it done", "change it", "delete it"]
    if not options:
        options = ["add it as a task", "mark a task done", "change or delete a task"]
    choices = _join_or(list(dict.fromkeys(options)))
    # The phrase travels with the question, so "add it" can answer it.
    adding = PendingCommand(action="add_task", arguments={"title": said})
    return ReplyEvent(
        f"Just to be sure about “{said}”: do you want me to {choices}?",
        DialogueState(
            awaiting=Awaiting.CHOICE, command=adding if Intent.ADD in command.options else None
        ),
    )


_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five"}


def _quoted_steps(steps: Sequence[Command]) -> str:
    return _join([f"“{step.said}”" for step in steps])


def _one_at_a_time(steps: Sequence[Command]) -> str:
    """The answer to several requests in one message that cannot each be read alone: nothing
    done, each named, and how to go on."""
    count = _COUNTS.get(len(steps), str(len(steps)))
    return (
        f"That's {count} requests in one message: {_quoted_steps(steps)}. I couldn't read "
        "each one on its own, so I haven't changed anything: please send them one at a time."
    )


def _done(step: Command, calls: Sequence[ToolCall]) -> bool:
    """Whether a request of several did what it said: a listing answered, or a task changed."""
    if step.intent is Intent.LIST:
        return bool(calls) and all(call.ok for call in calls)
    return any(call.ok and call.name in TASK_RESULT_TOOLS for call in calls)


def _still_to_do(steps: Sequence[Command]) -> str:
    """After a request that asks something or did nothing: the requests said after it, not
    done."""
    them = "it" if len(steps) == 1 else "them"
    return f"I haven't done {_quoted_steps(steps)} yet: send {them} again once this is settled."


def _too_many_now(steps: Sequence[Command], limit: int) -> str:
    """The requests from the first that would pass the turn's bound of tool calls on."""
    them = "it" if len(steps) == 1 else "them"
    return (
        f"I haven't done {_quoted_steps(steps)}: with {them}, this message would take more "
        f"than {limit} task operations, more than I do at once. Please send {them} separately."
    )


def _cannot_repeat(command: Command) -> str:
    """The answer to "add gym every monday and thursday" or "add water plants every 3 days": a
    task repeats daily, weekly or monthly, so that task is not added, and the reply says how
    to add one task for each day, or one that repeats as a task can."""
    title = command.title or "it"
    said = title[:1].lower() + title[1:]
    if not command.weekdays:
        return (
            f"A task repeats every day, week or month, not {command.repeats}, so I haven't "
            f"added “{title}”. Say “add {said} every day” (or every week, or every month), or "
            f"“add {said}” for a task that doesn't repeat."
        )
    adds = [f"“add {said} every {day}”" for day in command.weekdays]
    return (
        "A task repeats every day, week or month, not on several days of the week, so I "
        f"haven't added “{title}”. I can add one weekly task for each day: say "
        f"{', then '.join(adds)}."
    )


def _ask_when(command: Command) -> ReplyEvent:
    """ "make the report due after lunch": the due date's words are no day or time the dates
    read, so nothing changes and the user is asked for one they do."""
    example = f"make {_spoken_ref(command.ref)} due friday at 5pm"
    return ReplyEvent(
        f"I couldn't read “{command.unread_when}” as a day or time, so I changed nothing. "
        f"Tell me the day, for example “{example}”."
    )


def _spoken_ref(ref: TaskRef | None) -> str:
    """How a reply names the task a message referred to: "task 3", "the report", "it"."""
    if ref is not None and ref.ids:
        return "task " + " and ".join(map(str, ref.ids))
    if ref is not None and ref.title:
        return f"the {ref.title}"
    return "it"


def _words_of(text: str) -> frozenset[str]:
    return frozenset(text.split())


_GOT_IT = re.compile(r"^\W*(?:ok(?:ay)?,?\s+)?(?:got it|seen it|i saw it|noted)\W*$", re.IGNORECASE)
_GOT_IT_MARK = "got it"
# "add it", "yes, add it as a task": the answer to "do you want me to add it as a new task?";
# "no, add it as a new task" to "shall I delete it? ... or add the chore".
_ADD_IT = re.compile(
    r"^\W*(?:(?:yes|yeah|yep|sure|ok|okay|no|nope|nah)\W+)?(?:please\s+)?add\s+(?:it|that|this)"
    r"(?:\s+as\s+(?:a\s+)?(?:new\s+)?task)?(?:\s+please)?\W*$",
    re.IGNORECASE,
)
_ADDITIVE = re.compile(
    r"^(?:(?:and|also|plus)\s+)?(?P<what>[^?]{1,200}?)\s+(?:too|as well|also)$", re.IGNORECASE
)


def _order_to_oneself(message: str) -> bool:
    """A short phrase that starts with an everyday action verb and asks nothing of the
    assistant ("buy milk", "call the plumber"; not "book me a taxi")."""
    words = message.lower().split()
    return (
        2 <= len(words) <= 5
        and words[0] in ACTION_VERBS
        and "?" not in message
        and _words_of(" ".join(words[1:])).isdisjoint({"me", "us", "you"})
        and not _UNSUPPORTED.search(message)
    )


def _bare_phrase(message: str, *, now: datetime, tz: ZoneInfo) -> bool:
    """A word or two that is no question, no statement and no command ("milk", "dentist
    appointment"), with a day or not ("dentist friday after next"): perhaps a task to add,
    perhaps one to find."""
    due = find_due(message, now=now, tz=tz)
    if due is not None:
        message = f"{message[: due.start]} {message[due.end :]}"
    words = message.lower().split()
    return 0 < len(words) <= 3 and "?" not in message and words[0] not in _NOT_A_TITLE


_NOT_A_TITLE = _words_of(
    "i i'm im we you he she they it its it's this that what who where when why how which is "
    "are do does can could would will yes no nope yep ok okay sure play translate share "
    "sing open turn set tell search"
)
# Someone else's list: never the user's to read or change, whatever the verb.
_OTHERS_LIST = re.compile(
    r"\b(?!(?:today|tomorrow|yesterday|tonight|this|next|last|week|month|monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|everyone|everybody)'s)[a-z]+'s\s+(?:tasks|list|"
    r"todos|to-?do list)\b",
    re.IGNORECASE,
)
_UNSUPPORTED = re.compile(
    r"^(?:share|send|email me|mail me|text me|export|print|sync|translate|play|sing|"
    r"tell me a joke|what's the weather|set an alarm|set a timer|open)\b|"
    + _OTHERS_LIST.pattern
    + r"|\b(?:bob|alice|anna|someone else|my (?:wife|husband|boss|friend|partner)|other people|"
    r"another user)(?:'s|s')\s",
    re.IGNORECASE,
)
# A change to how an existing task repeats ("make it weekly", "set the trash to repeat
# weekly", "change the gym to every tuesday"), which no chat command makes: read as an edit
# or an addition, the words became a title ("Repeat weekly") or a new task ("It"). Read on
# the cleaned message: one space between words, so no run of spaces makes it backtrack.
# "Recurring" or "repeating" inside the words that name the task ("change my recurring gym to
# friday") is part of its name, and a sentence that starts by adding ("add gym that should
# recur weekly") or names no task ("don't forget recurring payments") changes no task: only a
# reference to a task (_TASK_REF), or a task's bare name before "should repeat", is what
# would repeat.
_TASK_REF = r"(?:it|that|this|that one|this one|(?:the|my) [\w' -]+?|task ?#?\d+|#\d+)"
# A task's bare name ("gym should repeat weekly", "stop gym from repeating"): up to four
# words, none joining two clauses, and not a person or a request to add ("we should repeat",
# "stop me from repeating", "add gym that ...").
_NAME_WORD = r"(?!(?:and|that|which|so|then)\b)[\w'#-]+"
_BARE_NAME = (
    rf"(?!(?:add|create|new|remind|put|i|we|you|they|he|she|me|us|him|her|them|people|"
    rf"everyone|everybody|anyone|anybody|someone|somebody|please)\b)"
    rf"{_NAME_WORD}(?: {_NAME_WORD}){{0,3}}"
)
_RECURRENCE_CHANGE = re.compile(
    r"^(?:make|set|change|turn|switch|have) (?:it|that|this|that one|this one|"
    r"the [\w' -]+? (?:task|one)|task ?#?\d+|#\d+) (?:to |into |as |for )?(?:a )?"
    r"(?:daily|weekly|monthly|recurring|repeating|every|each)\b|"
    r"^(?:make|set|change|switch|have|let) (?!an?\s)[\w' #-]+? (?:to |so (?:that )?"
    r"it )?(?:(?:repeat|recur)s?\b|(?:repeating|recurring)(?:$| (?:every|each|daily|weekly|"
    r"monthly)\b))|"
    r"^(?:change|set|switch|move) [\w' #-]+? to (?:every|each) \w+|"
    rf"^(?:{_TASK_REF}|{_BARE_NAME}) (?:should|must|needs to|has to|is supposed to) "
    r"(?:repeat|recur)\b|"
    rf"^(?:stop|don't|do not) (?:{_TASK_REF} (?:from )?)?(?:repeating|recurring)\b|"
    # A bare name only with nothing repeated after it: "stop kids from repeating mistakes"
    # keeps someone from repeating something.
    rf"^stop {_BARE_NAME} from (?:repeating|recurring)(?: (?:every \w+|each \w+|daily|"
    r"weekly|monthly|anymore|any more))?$",
    re.IGNORECASE,
)


def asks_to_change_recurrence(message: str) -> bool:
    """Whether ``message`` asks to change how an existing task repeats."""
    return _RECURRENCE_CHANGE.match(clean(message)) is not None


# "book a flight for me": the assistant asked to do it, not a task of the user's.
_FOR_ME = re.compile(r"\bfor (?:me|us)\b", re.IGNORECASE)


def _join_or(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def _tool_trouble(call: ToolCall, doing: str) -> str:
    if call.code == "not_found":
        ids = call.arguments.get("task_ids") or [call.arguments.get("task_id")]
        return _not_found(", ".join(f"task {i}" for i in ids if isinstance(i, int)) or "that task")
    return f"Sorry, I couldn't {doing}: {call.error or 'an unknown problem'}"


def _details(command: Command, *, now: datetime, tz: ZoneInfo) -> str:
    parts = []
    if command.due_at is not None:
        parts.append(f"due {describe(command.due_at, now=now, tz=tz)}")
    if command.priority:
        parts.append(f"{command.priority} priority")
    if command.tags:
        parts.append(f"tagged {_hashes(command.tags)}")
    if command.recurrence:
        parts.append(f"repeating {command.recurrence}")
    parts.extend(
        _reminder_words(reminder.argument(), now=now, tz=tz) for reminder in command.reminders or ()
    )
    return f" — {_join(parts)}" if parts else ""


def _reminder_words(reminder: dict[str, Any], *, now: datetime, tz: ZoneInfo) -> str:
    """ "I'll remind you today at 17:00", "I'll remind you an hour before it's due"."""
    at = reminder.get("at")
    if at is not None:
        with contextlib.suppress(ValueError, TypeError):
            return f"I'll remind you {describe(datetime.fromisoformat(str(at)), now=now, tz=tz)}"
    minutes = int(reminder.get("before_due_minutes") or 0)
    if minutes == 0:
        return "I'll remind you when it's due"
    return f"I'll remind you {_span(minutes)} before it's due"


def _span(minutes: int) -> str:
    for size, unit in ((10080, "week"), (1440, "day"), (60, "hour")):
        if minutes % size == 0:
            count = minutes // size
            return f"{'an' if unit == 'hour' and count == 1 else count if count > 1 else 'a'} " + (
                f"{unit}s" if count > 1 else unit
            )
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _cut_note(command: Command) -> str:
    """What was cut to fit the todo service's limits, said after the confirmation ("" when
    nothing was): the user learns the task does not hold everything they wrote."""
    cut = []
    if command.title is not None and len(command.title) > TITLE_MAX:
        cut.append(f"the title to its first {TITLE_MAX} characters")
    if command.description is not None and len(command.description) > DESCRIPTION_MAX:
        cut.append(f"the description to its first {DESCRIPTION_MAX:,} characters")
    return f" It was too long, so I shortened {_join(cut)}." if cut else ""


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _list_label(command: Command) -> str:
    filters = command.filters
    words = []
    if filters.priority:
        words.append(f"{filters.priority}-priority")
    if filters.status != "all":
        words.append(filters.status)
    label = " ".join([*words, "tasks"])
    if filters.tag:
        label += f" tagged #{filters.tag}"
    if filters.q:
        label += f" matching “{filters.q}”"
    if filters.due_before or filters.due_after:
        label += " in that time frame"
    return label


def _empty_list(filters: ListFilters, what: str) -> str:
    if filters == ListFilters(status="pending"):
        return "You have no pending tasks — all caught up!"
    if filters == ListFilters(status="completed"):
        return "You haven't completed any tasks yet."
    if filters == ListFilters():
        return "Your list is empty. Try “Add a task to buy groceries”."
    return f"I didn't find any {what}."


def _singular(label: str) -> str:
    return label.replace("tasks", "task", 1)


def _task_line(task: dict[str, Any], *, now: datetime, tz: ZoneInfo) -> str:
    mark = "✓" if task.get("completed") else "•"
    line = f"{mark} {task.get('id')}: {task.get('title', '')}"
    extras = []
    priority = task.get("priority")
    if priority and priority != "medium":
        extras.append(f"{priority} priority")
    due = task.get("due_at")
    if isinstance(due, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(due)
            late = "overdue: " if moment < now and not task.get("completed") else ""
            extras.append(f"{late}due {describe(moment, now=now, tz=tz)}")
    tags = task.get("tags")
    if isinstance(tags, list) and tags:
        extras.append(_hashes(tags))
    return line + (f" ({', '.join(extras)})" if extras else "")
