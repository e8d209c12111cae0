"""The rule-based agent: offline, deterministic, and good at everyday task English.

It reads the message with ``language.understand``, resolves task references (ids, "it" from
the stored history, title words via ``list_tasks``), calls the todo tools and answers in a
friendly sentence. Greetings and help never touch the tools. When a reference matches
several tasks it asks which one, and the next message can answer with a number, an ordinal
or title words: the question and its candidates are read back from the stored history.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
    too_many_tool_calls,
)
from chat_service.agents.dates import describe
from chat_service.agents.language import (
    Command,
    Intent,
    ListFilters,
    TaskRef,
    read_ref,
    understand,
)

LIST_LINES = 20
# The todo service's limits: longer text is cut to fit, and the reply says so.
TITLE_MAX = 200
DESCRIPTION_MAX = 1000
TASK_RESULT_TOOLS = ("add_task", "complete_task", "update_task", "delete_task")

GREETING = (
    "Hi! I'm your task assistant. Tell me what to add, or ask “What's pending?” to see your list."
)
THANKS = "You're welcome! Anything else I can do for your tasks?"
HELP = (
    "I can manage your tasks for you. For example:\n"
    "• “Add a task to buy groceries tomorrow at 5pm #errands”\n"
    "• “Show me all my tasks”, “What's pending?”, “What's due this week?”\n"
    "• “Mark task 3 as complete” or “mark it done”\n"
    "• “Change task 1 to 'Call mom tonight'”, “make task 2 high priority”, "
    "“move task 4 to Friday”\n"
    "• “Delete the meeting task”"
)
UNKNOWN = (
    "Sorry, I didn't understand that. I can add, list, complete, change and delete tasks — "
    "try “Add a task to call mom tomorrow”, “What's pending?” or “Mark task 3 as done”. "
    "Say “help” for more."
)
ASK_TITLE = "Sure — what should the new task be called?"
ASK_WHICH = "Which one did you mean? You can answer with its number."
BULK = (
    "To be safe I change one task at a time. Tell me which one, for example “delete task 3”, "
    "or ask “What have I completed?” to see their numbers."
)
REOPEN = (
    "I can only mark tasks as complete, not reopen them. You can reopen a task in the app, "
    "or I can add it again as a new task."
)
NO_REFERENCE = (
    "Which task do you mean? Give me its number (e.g. “task 3”) or a word from its title."
)

_VERBS = {
    Intent.COMPLETE: "complete",
    Intent.DELETE: "delete",
    Intent.UPDATE: "update",
    Intent.REOPEN: "reopen",
}


@dataclass(frozen=True)
class TaskMention:
    id: int
    title: str


@dataclass
class _Resolution:
    tasks: list[TaskMention] = field(default_factory=list)
    reply: str | None = None


class RulesAgent:
    """Implements ``Agent`` without any model: rules, the stored history and the tools.

    A turn makes at most ``max_tool_calls`` tool calls: a command that would need more (one
    call per task of "delete 1, 2, ..., 999") makes none and asks the user to narrow it.
    """

    def __init__(self, *, max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS) -> None:
        self._max_tool_calls = max_tool_calls

    async def run(
        self,
        history: Sequence[HistoryMessage],
        message: str,
        tools: Tools,
        *,
        now: datetime,
        tz: ZoneInfo,
    ) -> AsyncGenerator[AgentEvent, None]:
        command = understand(message, now=now, tz=tz)
        command = _continue_dialogue(command, history, message, now=now, tz=tz)
        async for event in self._act(command, history, tools, now=now, tz=tz):
            yield event

    async def _act(
        self,
        command: Command,
        history: Sequence[HistoryMessage],
        tools: Tools,
        *,
        now: datetime,
        tz: ZoneInfo,
    ) -> AsyncIterator[AgentEvent]:
        intent = command.intent
        if intent is Intent.GREETING:
            yield ReplyEvent(GREETING)
        elif intent is Intent.THANKS:
            yield ReplyEvent(THANKS)
        elif intent is Intent.HELP:
            yield ReplyEvent(HELP)
        elif intent is Intent.ADD:
            async for event in self._add(command, tools, now=now, tz=tz):
                yield event
        elif intent is Intent.LIST:
            async for event in self._list(command, tools, now=now, tz=tz):
                yield event
        elif intent is Intent.REOPEN:
            yield ReplyEvent(REOPEN)
        elif intent in {Intent.COMPLETE, Intent.DELETE, Intent.UPDATE}:
            async for event in self._change(command, history, tools, now=now, tz=tz):
                yield event
        elif intent is Intent.ANSWER and command.ref is not None and command.ref.ids:
            ids = ", ".join(f"task {i}" for i in command.ref.ids)
            yield ReplyEvent(
                f"What would you like to do with {ids}? I can mark it done, change it or delete it."
            )
        else:
            yield ReplyEvent(UNKNOWN)

    # --- adding and listing ---------------------------------------------------------------------

    async def _add(
        self, command: Command, tools: Tools, *, now: datetime, tz: ZoneInfo
    ) -> AsyncIterator[AgentEvent]:
        if not command.title:
            yield ReplyEvent(ASK_TITLE)
            return
        arguments: dict[str, Any] = {"title": command.title[:TITLE_MAX]}
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
        call = await tools.call("add_task", arguments)
        yield ToolCallEvent(call)
        if not call.ok:
            yield ReplyEvent(_tool_trouble(call, "add that task"))
            return
        result = call.result if isinstance(call.result, dict) else {}
        title = result.get("title", command.title)
        details = _details(command, now=now, tz=tz)
        task_id = result.get("task_id")
        number = f" as task {task_id}" if task_id is not None else ""
        cut = _cut_note(command)
        yield ReplyEvent(f"Done! I added “{title}” to your list{number}{details}.{cut}")

    async def _list(
        self, command: Command, tools: Tools, *, now: datetime, tz: ZoneInfo
    ) -> AsyncIterator[AgentEvent]:
        filters = command.filters
        call = await tools.call("list_tasks", filters.arguments())
        yield ToolCallEvent(call)
        if not call.ok:
            yield ReplyEvent(_tool_trouble(call, "look up your tasks"))
            return
        tasks = [t for t in call.result or [] if isinstance(t, dict)]
        what = _list_label(command)
        if not tasks:
            yield ReplyEvent(_empty_list(filters, what))
            return
        lines = [_task_line(task, now=now, tz=tz) for task in tasks[:LIST_LINES]]
        if len(tasks) > LIST_LINES:
            lines.append(f"…and {len(tasks) - LIST_LINES} more.")
        count = f"{len(tasks)} {what}" if len(tasks) != 1 else f"1 {_singular(what)}"
        yield ReplyEvent(f"Here {'are' if len(tasks) != 1 else 'is'} {count}:\n" + "\n".join(lines))

    # --- changing existing tasks ----------------------------------------------------------------

    async def _change(
        self,
        command: Command,
        history: Sequence[HistoryMessage],
        tools: Tools,
        *,
        now: datetime,
        tz: ZoneInfo,
    ) -> AsyncIterator[AgentEvent]:
        ref = command.ref
        assert ref is not None
        if ref.bulk:
            yield ReplyEvent(BULK)
            return
        resolution = _Resolution()
        looked_up = 0
        async for event in self._resolve(command, ref, history, tools, resolution):
            looked_up += 1
            yield event
        if resolution.reply is not None:
            yield ReplyEvent(resolution.reply)
            return
        if looked_up + len(resolution.tasks) > self._max_tool_calls:
            yield ReplyEvent(too_many_tool_calls(self._max_tool_calls))
            return

        replies = []
        for task in resolution.tasks:
            name, arguments = _change_call(command, task)
            call = await tools.call(name, arguments)
            yield ToolCallEvent(call)
            replies.append(_change_reply(command, task, call, now=now, tz=tz))
        yield ReplyEvent(" ".join(replies))

    async def _resolve(
        self,
        command: Command,
        ref: TaskRef,
        history: Sequence[HistoryMessage],
        tools: Tools,
        into: _Resolution,
    ) -> AsyncIterator[AgentEvent]:
        """Which task(s) ``ref`` means: ids as given, "it" from history, titles via list_tasks."""
        if ref.ids:
            into.tasks = [TaskMention(i, "") for i in ref.ids]
            return
        if ref.pronoun or ref.ordinal is not None:
            mentioned = last_mentioned(history)
            if ref.ordinal is not None and len(mentioned) > 1:
                index = ref.ordinal - 1 if ref.ordinal > 0 else len(mentioned) - 1
                if 0 <= index < len(mentioned):
                    into.tasks = [mentioned[index]]
                    return
            if len(mentioned) == 1:
                into.tasks = mentioned
            elif mentioned:
                into.reply = _which_one(mentioned, None)
            else:
                into.reply = NO_REFERENCE
            return

        words = ref.title or ""
        status = "pending" if command.intent is Intent.COMPLETE else "all"
        call = await tools.call("list_tasks", {"status": status, "q": words})
        yield ToolCallEvent(call)
        if not call.ok:
            into.reply = _tool_trouble(call, "look up that task")
            return
        candidates = [
            TaskMention(int(t["id"]), str(t.get("title", "")))
            for t in call.result or []
            if isinstance(t, dict) and isinstance(t.get("id"), int)
        ]
        matches = match_title(words, candidates)
        if len(matches) == 1:
            into.tasks = matches
        elif matches:
            into.reply = _which_one(matches, words)
        else:
            kind = "pending task" if status == "pending" else "task"
            into.reply = (
                f"I couldn't find a {kind} matching “{words}”. "
                "Say “show my tasks” to see what's on your list."
            )


def _change_call(command: Command, task: TaskMention) -> tuple[str, dict[str, Any]]:
    if command.intent is Intent.COMPLETE:
        return "complete_task", {"task_id": task.id}
    if command.intent is Intent.DELETE:
        return "delete_task", {"task_id": task.id}
    arguments: dict[str, Any] = {"task_id": task.id}
    if command.title is not None:
        arguments["title"] = command.title[:TITLE_MAX]
    if command.description is not None:
        arguments["description"] = command.description[:DESCRIPTION_MAX]
    if command.priority is not None:
        arguments["priority"] = command.priority
    if command.tags:
        arguments["tags"] = list(command.tags)
    if command.due_at is not None:
        arguments["due_at"] = command.due_at.isoformat()
    return "update_task", arguments


def _change_reply(
    command: Command, task: TaskMention, call: ToolCall, *, now: datetime, tz: ZoneInfo
) -> str:
    if not call.ok:
        return _tool_trouble(call, f"{_VERBS[command.intent]} task {task.id}")
    result = call.result if isinstance(call.result, dict) else {}
    title = result.get("title") or task.title
    named = f"“{title}” (task {task.id})" if title else f"task {task.id}"
    if command.intent is Intent.COMPLETE:
        return f"Nice work! I marked {named} as complete."
    if command.intent is Intent.DELETE:
        return f"I deleted {named}."
    changes = []
    if command.title is not None:
        changes.append(f"renamed it to “{command.title[:TITLE_MAX]}”")
    if command.description is not None:
        changes.append("updated its description")
    if command.priority is not None:
        changes.append(f"set its priority to {command.priority}")
    if command.tags:
        changes.append("tagged it " + " ".join(f"#{t}" for t in command.tags))
    if command.due_at is not None:
        changes.append(f"set it due {describe(command.due_at, now=now, tz=tz)}")
    if not changes:
        return f"Updated {named}."
    return f"Updated task {task.id}: I {_join(changes)}.{_cut_note(command)}"


# --- reading the conversation back ---------------------------------------------------------------


def last_mentioned(history: Sequence[HistoryMessage]) -> list[TaskMention]:
    """The task(s) the conversation last talked about, newest first in time.

    A single added/changed/completed/deleted task, or the tasks of the latest listing. Read
    from the stored tool calls, so it survives restarts like everything else.
    """
    for message in reversed(history):
        if message.role != "assistant":
            continue
        for call in reversed(message.tool_calls):
            if not call.ok:
                continue
            if call.name in TASK_RESULT_TOOLS and isinstance(call.result, dict):
                task_id = call.result.get("task_id")
                if isinstance(task_id, int):
                    return [TaskMention(task_id, str(call.result.get("title", "")))]
            if call.name == "list_tasks" and isinstance(call.result, list):
                tasks = [
                    TaskMention(t["id"], str(t.get("title", "")))
                    for t in call.result
                    if isinstance(t, dict) and isinstance(t.get("id"), int)
                ]
                if tasks:
                    return tasks
    return []


def _continue_dialogue(
    command: Command,
    history: Sequence[HistoryMessage],
    message: str,
    *,
    now: datetime,
    tz: ZoneInfo,
) -> Command:
    """Read a message as the answer to the assistant's last question, when it was one."""
    if len(history) < 2 or history[-1].role != "assistant":
        return command
    question = history[-1]
    if question.content == ASK_TITLE and command.intent in {Intent.UNKNOWN, Intent.ADD}:
        if command.intent is Intent.ADD and command.title:
            return command
        return understand(f"add {message}", now=now, tz=tz)
    if not question.content.endswith(ASK_WHICH):
        return command
    if command.intent not in {Intent.ANSWER, Intent.UNKNOWN}:
        return command
    asked = understand(history[-2].content, now=now, tz=tz)
    if asked.intent not in _VERBS:
        return command
    candidates = last_mentioned(history)
    chosen: list[TaskMention] = []
    ref = command.ref or read_ref(message)
    if ref is not None and ref.ids:
        chosen = [c for c in candidates if c.id in ref.ids] or [TaskMention(i, "") for i in ref.ids]
    elif ref is not None and ref.ordinal is not None:
        index = ref.ordinal - 1 if ref.ordinal > 0 else len(candidates) - 1
        chosen = [candidates[index]] if 0 <= index < len(candidates) else []
    elif ref is not None and ref.title:
        chosen = match_title(ref.title, candidates)
    if len(chosen) != 1:
        return command
    return Command(
        asked.intent,
        ref=TaskRef(ids=(chosen[0].id,)),
        title=asked.title,
        description=asked.description,
        priority=asked.priority,
        tags=asked.tags,
        due_at=asked.due_at,
    )


# --- matching titles -----------------------------------------------------------------------------

_STOP_WORDS = frozenset({"the", "a", "an", "my", "to", "of", "for", "and", "one", "task", "about"})


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s", "y", "ing"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[\w']+", text.lower()) if w not in _STOP_WORDS]


def match_title(words: str, candidates: Sequence[TaskMention]) -> list[TaskMention]:
    """Candidates whose title contains every word of ``words`` (loosely stemmed); an exact
    title match wins over partial ones."""
    wanted = words.strip().lower()
    exact = [c for c in candidates if c.title.strip().lower() == wanted]
    if exact:
        return exact[:1] if len(exact) == 1 else exact
    stems = [_stem(w) for w in _words(words)]
    if not stems:
        return []
    return [c for c in candidates if all(s in c.title.lower() for s in stems)]


# --- wording -------------------------------------------------------------------------------------


def _which_one(tasks: Sequence[TaskMention], words: str | None) -> str:
    about = f" matching “{words}”" if words else ""
    lines = "\n".join(f"• {t.id}: {t.title}" for t in tasks[:LIST_LINES])
    return f"I found {len(tasks)} tasks{about}:\n{lines}\n{ASK_WHICH}"


def _tool_trouble(call: ToolCall, doing: str) -> str:
    error = call.error or "an unknown problem"
    if re.search(r"not found", error, re.IGNORECASE):
        number = re.search(r"\d+", error)
        which = f"task {number.group(0)}" if number else "that task"
        return f"I couldn't find {which} on your list. Say “show my tasks” to see their numbers."
    return f"I couldn't {doing}: {error}"


def _details(command: Command, *, now: datetime, tz: ZoneInfo) -> str:
    parts = []
    if command.due_at is not None:
        parts.append(f"due {describe(command.due_at, now=now, tz=tz)}")
    if command.priority:
        parts.append(f"{command.priority} priority")
    if command.tags:
        parts.append("tagged " + " ".join(f"#{t}" for t in command.tags))
    if command.recurrence:
        parts.append(f"repeating {command.recurrence}")
    return f" — {_join(parts)}" if parts else ""


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
            extras.append("due " + describe(datetime.fromisoformat(due), now=now, tz=tz))
    tags = task.get("tags")
    if isinstance(tags, list) and tags:
        extras.append(" ".join(f"#{t}" for t in tags))
    return line + (f" ({', '.join(extras)})" if extras else "")
