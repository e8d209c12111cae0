"""The chat corpus against the rules agent: accuracy per intent on the main, more and apart sets.

Every entry of tests/chat/corpus/main.yaml, more.yaml (and apart.yaml when present) runs as a
fresh user
through the real chat service with the ``rules`` agent and the real todo service over MCP, one
database and one pair of apps for the module, the clock frozen at Wednesday 2026-01-14 09:00
Europe/London. ``pytest tests/chat/test_corpus.py -s`` (``make corpus``) prints the report;
it is also written to ``.pytest_cache/d/chat-corpus/report.txt``. The format is in
tests/chat/corpus/README.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_service.app import create_app
from chat_service.settings import ChatSettings
from shared.clock import FrozenClock
from shared.db import Database
from tests.support.chat_corpus import (
    CORPUS_DIR,
    INTENTS,
    Corpus,
    CorpusError,
    Entry,
    asks_a_question,
    calls_mismatch,
    fill,
    final_mismatch,
    load_corpus,
    parse_corpus,
    reply_mismatch,
    resolve,
    value_matches,
    with_filler,
)
from tests.support.database import empty_service_schemas
from tests.support.serving import live_server, serve
from tests.support.tokens import TestIssuer
from todo_service.app import create_app as create_todo_app
from todo_service.settings import TodoSettings

# Wednesday 14 January 2026, 09:00 in London (UTC+00:00 in winter).
NOW = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)
TIMEZONE = "Europe/London"
MAIN = CORPUS_DIR / "main.yaml"
MORE = CORPUS_DIR / "more.yaml"
APART = CORPUS_DIR / "apart.yaml"
# The sets in report order. ``apart`` is held out: the report gives its accuracy, never its
# wrong lines, so nobody tunes the agent to them.
SETS = ("main", "more", "apart")
HELD_OUT = frozenset({"apart"})
# Entries run side by side (each is its own user); the database pool is 5 + 20 connections.
CONCURRENCY = 8
FILLER_SEED = 14

MAIN_TARGET = 0.97
APART_TARGET = 0.90
INTENT_TARGET = 0.90


@dataclass(frozen=True)
class Outcome:
    corpus: str  # "main", "more" or "apart"
    entry: Entry
    error: str | None  # None: right

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Services:
    chat: httpx.AsyncClient
    todo: httpx.AsyncClient
    issuer: TestIssuer
    engine: AsyncEngine


def corpora() -> dict[str, Corpus]:
    found = {"main": load_corpus(MAIN), "more": load_corpus(MORE)}
    if APART.exists():
        found["apart"] = load_corpus(APART)
    return found


# --- running entries --------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def services(
    migrated_url: str, engine: AsyncEngine, issuer: TestIssuer
) -> AsyncIterator[Services]:
    """The todo service over HTTP (its MCP endpoint is what the agent calls) and the chat
    service in process, on one database, with the corpus's frozen clock."""
    clock = FrozenClock(NOW)
    db = Database(engine)
    todo_settings = TodoSettings(_env_file=None, environment="test", database_url=migrated_url)
    todo_app = create_todo_app(todo_settings, db=db, verifier=issuer.verifier(), clock=clock)
    try:
        with _quiet("access", "httpx", "mcp", "uvicorn", "chat_service", "todo_service"):
            async with live_server(todo_app) as base:
                chat_settings = ChatSettings(
                    _env_file=None,
                    environment="test",
                    database_url=migrated_url,
                    todo_mcp_url=f"{base}/api/mcp",
                    todo_timeout_seconds=10.0,
                )
                chat_app = create_app(chat_settings, db=db, verifier=issuer.verifier(), clock=clock)
                # Seeding and reading back go to the same todo app in process: no socket needed.
                todo_transport = httpx.ASGITransport(app=todo_app)
                async with (
                    serve(chat_app) as chat,
                    httpx.AsyncClient(transport=todo_transport, base_url="http://todo") as todo,
                ):
                    yield Services(chat=chat, todo=todo, issuer=issuer, engine=engine)
    finally:
        await empty_service_schemas(engine, restart_identity=True)


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Thousands of requests: their INFO lines would bury the report printed under ``-s``."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


async def _seed(services: Services, headers: dict[str, str], entry: Entry) -> dict[str, int]:
    ids: dict[str, int] = {}
    for number, task in enumerate(entry.tasks, start=1):
        created = await services.todo.post("/api/tasks", json=task.create_body(), headers=headers)
        assert created.status_code == 201, f"{entry.id}: seeding failed: {created.text}"
        task_id = created.json()["id"]
        if task.completed:
            done = await services.todo.patch(
                f"/api/tasks/{task_id}/complete", json={"completed": True}, headers=headers
            )
            assert done.status_code == 200, f"{entry.id}: seeding failed: {done.text}"
        ids[f"t{number}"] = task_id
    return ids


async def _awaits(services: Services, conversation_id: int, response: str) -> bool:
    """Whether the turn's reply waits for an answer: the stored dialogue state when the chat
    schema keeps one (a key ``awaiting`` in the assistant message's row or in one of its JSON
    columns), else the reply's own text."""
    async with services.engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT to_jsonb(m) FROM chat.messages m WHERE m.conversation_id = :c "
                    "AND m.role = 'assistant' ORDER BY m.id DESC LIMIT 1"
                ),
                {"c": conversation_id},
            )
        ).scalar_one_or_none()
    found, value = _find_awaiting(row)
    if found:
        return value not in (None, False, "", "none", "nothing")
    return asks_a_question(response)


def _find_awaiting(value: Any, depth: int = 0) -> tuple[bool, Any]:
    if not isinstance(value, dict) or depth > 2:
        return False, None
    if "awaiting" in value:
        awaiting = value["awaiting"]
        return True, awaiting.get("kind", awaiting) if isinstance(awaiting, dict) else awaiting
    for key, inner in value.items():
        if key in {"tool_calls", "content"}:
            continue  # tool results carry task titles: never read as dialogue state
        found, awaiting = _find_awaiting(inner, depth + 1)
        if found:
            return True, awaiting
    return False, None


async def run_entry(services: Services, corpus: str, entry: Entry) -> Outcome:
    """One entry as a fresh user."""
    headers = {"Authorization": f"Bearer {services.issuer.mint(f'corpus-{uuid.uuid4().hex}')}"}
    ids = await _seed(services, headers, entry)
    conversation: int | None = None
    created = 0
    for number, turn in enumerate(entry.turns, start=1):
        body: dict[str, Any] = {"message": fill(turn.say, ids), "timezone": TIMEZONE}
        if conversation is not None:
            body["conversation_id"] = conversation
        response = await services.chat.post("/api/chat", json=body, headers=headers)
        if response.status_code != 200:
            return Outcome(corpus, entry, f"turn {number}: HTTP {response.status_code}")
        answer = response.json()
        conversation = answer["conversation_id"]
        calls = [(call["name"], call.get("arguments") or {}) for call in answer["tool_calls"]]
        for call in answer["tool_calls"]:
            result = call.get("result")
            if call["name"] == "add_task" and isinstance(result, dict) and "task_id" in result:
                created += 1
                ids[f"new{created}"] = result["task_id"]
        error = None
        if turn.expect.calls is not None:
            expected = [resolve(call.model_dump(), ids) for call in turn.expect.calls]
            error = calls_mismatch(expected, calls)
        if error is None and turn.expect.reply is not None:
            awaits = await _awaits(services, conversation, answer["response"])
            error = reply_mismatch(
                turn.expect.reply, calls=calls, response=answer["response"], awaits=awaits
            )
        if error is not None:
            shown = [f"{name} {arguments}" for name, arguments in calls]
            return Outcome(
                corpus,
                entry,
                f"turn {number}: {error}; calls {shown}; reply {answer['response']!r}",
            )
    if entry.final is not None:
        listed = await services.todo.get(
            "/api/tasks", params={"status": "all", "limit": 100}, headers=headers
        )
        assert listed.status_code == 200, listed.text
        expected_final = [
            # exclude_unset: an explicit null ("no due date") is checked, an absent key is not.
            resolve(task.model_dump(mode="json", exclude_unset=True), ids)
            for task in entry.final
        ]
        error = final_mismatch(expected_final, listed.json())
        if error is not None:
            return Outcome(corpus, entry, f"final: {error}")
    return Outcome(corpus, entry, None)


async def run_all(services: Services, work: list[tuple[str, Entry]]) -> list[Outcome]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(corpus: str, entry: Entry) -> Outcome:
        async with gate:
            return await run_entry(services, corpus, entry)

    return list(await asyncio.gather(*(one(corpus, entry) for corpus, entry in work)))


@pytest.fixture(scope="module")
async def outcomes(services: Services) -> list[Outcome]:
    work = [(name, entry) for name, corpus in corpora().items() for entry in corpus.entries]
    async with asyncio.timeout(540):
        return await run_all(services, work)


# --- the report -------------------------------------------------------------------------------


def _rate(right: int, total: int) -> str:
    return f"{right:>3}/{total:<3} {100 * right / total:5.1f} %" if total else f"{'-':>15}"


def accuracy(outcomes: list[Outcome], corpus: str, intent: str | None = None) -> float | None:
    chosen = [
        o for o in outcomes if o.corpus == corpus and (intent is None or o.entry.intent == intent)
    ]
    return sum(o.ok for o in chosen) / len(chosen) if chosen else None


def report(outcomes: list[Outcome]) -> str:
    sets = sorted({o.corpus for o in outcomes}, key=SETS.index)
    lines = [
        f"Chat corpus, rules agent, clock {NOW:%Y-%m-%d %H:%M} {TIMEZONE}",
        f"{'intent':<15}" + "".join(f"{name:>17}" for name in sets),
    ]

    def row(label: str, intent: str | None) -> str:
        cells = []
        for name in sets:
            chosen = [
                o
                for o in outcomes
                if o.corpus == name and (intent is None or o.entry.intent == intent)
            ]
            cells.append(f"{_rate(sum(o.ok for o in chosen), len(chosen)):>17}")
        return f"{label:<15}" + "".join(cells)

    lines += [row(intent, intent) for intent in INTENTS]
    lines.append(row("all", None))
    wrong = [o for o in outcomes if not o.ok]
    listed = [o for o in wrong if o.corpus not in HELD_OUT]
    if wrong:
        lines += [
            "",
            f"Wrong ({len(wrong)}, of which {len(wrong) - len(listed)} held out, not listed):",
        ]
        lines += [
            f"- [{o.corpus}] {o.entry.id} ({o.entry.intent}) {o.entry.turns[0].say!r}: {o.error}"
            for o in listed
        ]
    return "\n".join(lines) + "\n"


def _write(config: pytest.Config, name: str, content: str) -> Path:
    """Into the pytest cache (``.pytest_cache/d/chat-corpus/``), or its temporary directory
    when the cache is switched off."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        directory = cache.mkdir("chat-corpus")
    else:
        directory = config._tmp_path_factory.mktemp("chat-corpus")  # type: ignore[attr-defined]
    path = directory / name
    path.write_text(content, encoding="utf-8")
    return path


# The whole corpus runs in the first test's setup: about 15 s of CPU, more on a busy machine.
@pytest.mark.timeout(600)
async def test_corpus_report(outcomes: list[Outcome], pytestconfig: pytest.Config) -> None:
    """Runs every entry and reports accuracy per intent and per set."""
    content = report(outcomes)
    path = _write(pytestconfig, "report.txt", content)
    print(f"\n{content}(written to {path})")
    counted = {o.entry.id for o in outcomes if o.corpus == "main"}
    assert counted == {entry.id for entry in load_corpus(MAIN).entries}


@pytest.mark.timeout(600)
async def test_the_rules_agent_meets_the_corpus_targets(outcomes: list[Outcome]) -> None:
    main = accuracy(outcomes, "main")
    assert main is not None
    assert main >= MAIN_TARGET, f"main set {main:.1%} < {MAIN_TARGET:.0%}"
    more = accuracy(outcomes, "more")
    assert more is not None
    assert more >= MAIN_TARGET, f"more set {more:.1%} < {MAIN_TARGET:.0%}"
    apart = accuracy(outcomes, "apart")
    if apart is not None:
        assert apart >= APART_TARGET, f"apart set {apart:.1%} < {APART_TARGET:.0%}"
    low = {
        intent: rate
        for intent in INTENTS
        if (rate := accuracy(outcomes, "main", intent)) is not None and rate < INTENT_TARGET
    }
    assert not low, f"intents under {INTENT_TARGET:.0%}: {low}"


@pytest.mark.timeout(600)
async def test_fillers_do_not_change_the_outcome(
    services: Services, outcomes: list[Outcome], pytestconfig: pytest.Config
) -> None:
    """Every utterance of the main and more sets again with a filler ("um", "please", "for
    me", "right now") at a seeded random word boundary outside quoted titles: each line the
    agent gets right without the filler it must get right with it."""
    variants: list[tuple[str, Entry]] = [
        (
            name,
            u.model_copy(
                update={"say": with_filler(u.say, random.Random(f"{FILLER_SEED}:{u.id}"))}
            ),
        )
        for name, path in (("main", MAIN), ("more", MORE))
        for u in load_corpus(path).utterances
    ]
    async with asyncio.timeout(540):
        with_fillers = await run_all(services, variants)
    plain = {o.entry.id: o for o in outcomes if o.corpus in {"main", "more"}}
    changed = [o for o in with_fillers if plain[o.entry.id].ok and not o.ok]
    right = sum(plain[o.entry.id].ok for o in with_fillers)
    lines = [f"Fillers: {right - len(changed)} of {right} lines right without fillers stay right"]
    lines += [f"- {o.entry.id} {o.entry.turns[0].say!r}: {o.error}" for o in changed]
    content = "\n".join(lines) + "\n"
    _write(pytestconfig, "fillers.txt", content)
    print(f"\n{content}")
    assert not changed


# --- the corpus files and the harness's own rules ---------------------------------------------


def test_the_corpus_files_follow_the_format() -> None:
    found = corpora()
    main = found["main"]
    assert len(main.utterances) >= 400
    assert len(main.dialogues) >= 60
    for intent in INTENTS:
        count = sum(entry.intent == intent for entry in main.entries)
        assert count >= 15, f"{intent}: {count} lines"


VALID = """
utterances:
  - id: add-001
    intent: add
    say: "add buy milk"
    expect: {calls: [{name: add_task, args: {title: "Buy milk"}}]}
dialogues:
  - id: dlg-ref-001
    intent: reference
    tasks: [{title: Call mom}]
    turns:
      - say: "complete task {t1}"
        expect: {calls: [{name: complete_task, args: {task_id: "{t1}"}}]}
    final: [{title: Call mom, completed: true}]
"""


def test_a_valid_corpus_loads() -> None:
    corpus = parse_corpus(VALID)
    assert [entry.id for entry in corpus.entries] == ["add-001", "dlg-ref-001"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("    intent: add\n", "    intent: add\n    note: x\n"), "Extra inputs"),
        (('say: "add buy milk"', 'sya: "add buy milk"'), "Extra inputs"),
        (("  - id: dlg-ref-001", "  - id: add-001"), "duplicate ids: add-001"),
        (("intent: add\n", "intent: shopping\n"), "intent"),
        (("name: add_task", "name: add_tasks"), "unknown tool"),
        (('task_id: "{t1}"', 'task_id: "{t2}"'), "{t2} but only 1 tasks"),
        (('task_id: "{t1}"', 'task_id: "{new1}"'), "{new1} before that task is added"),
        (
            ("expect: {calls: [{name: add_task", "expect: {reply: maybe, x: [{name: add_task"),
            "reply",
        ),
        (("title: Call mom, completed", "title: Call mom, done"), "Extra inputs"),
        (('    say: "add buy milk"\n', "    say: yes\n"), "say"),
    ],
)
def test_a_corpus_that_breaks_the_format_is_refused(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in VALID
    with pytest.raises(CorpusError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_corpus(VALID.replace(old, new, 1))


@pytest.mark.parametrize(
    "text", ["- just a list", "utterances: []\nextra: []", "utterances: [", "say: yes"]
)
def test_a_file_that_is_not_a_corpus_is_refused(text: str) -> None:
    with pytest.raises(CorpusError):
        parse_corpus(text)


def test_expected_arguments_compare_as_the_format_says() -> None:
    assert value_matches("title", "Buy milk", "  buy MILK ")
    assert not value_matches("title", "Buy milk", "Buy milk today")
    assert value_matches("due_at", "2026-01-15T09:00:00+00:00", "2026-01-15T10:00:00+01:00")
    assert value_matches("due_before", "2026-01-15T00:00:00+00:00", "2026-01-15T00:00:00Z")
    assert not value_matches("due_at", "2026-01-15T09:00:00+00:00", "2026-01-15T09:00:00")
    assert value_matches("task_ids", [3, 1], [1, 3])
    assert not value_matches("task_ids", [3, 1], [1, 3, 4])
    assert value_matches("tags", ["Errands"], ["errands"])
    assert not value_matches("task_id", 3, "3")
    assert not value_matches("completed", False, 0)
    assert value_matches("description", None, None)
    assert not value_matches("description", None, "x")


def test_calls_must_match_in_number_name_and_given_arguments() -> None:
    expected = [{"name": "list_tasks"}, {"name": "delete_task", "args": {"task_id": 7}}]
    read = ("list_tasks", {"status": "all", "q": "meeting"})
    assert calls_mismatch(expected, [read, ("delete_task", {"task_id": 7})]) is None
    assert calls_mismatch(expected, [("delete_task", {"task_id": 7})]) == "1 calls, expected 2"
    assert "delete_task" in (
        calls_mismatch(expected, [read, ("complete_task", {"task_id": 7})]) or ""
    )
    assert "task_id=8" in (calls_mismatch(expected, [read, ("delete_task", {"task_id": 8})]) or "")


def test_placeholders_become_the_real_ids() -> None:
    ids = {"t1": 41, "t2": 42, "new1": 99}
    assert fill("Mark task {t1} as complete", ids) == "Mark task 41 as complete"
    assert resolve({"task_id": "{t2}", "task_ids": ["{t1}", "{new1}"]}, ids) == {
        "task_id": 42,
        "task_ids": [41, 99],
    }
    assert resolve("rename {t1}", ids) == "rename 41"


def test_replies_are_judged_by_kind() -> None:
    listing = [("list_tasks", {})]
    assert reply_mismatch("clarify", calls=listing, response="Which one?", awaits=True) is None
    assert reply_mismatch("clarify", calls=[], response="Done.", awaits=False) is not None
    changed = [("delete_task", {"task_id": 1})]
    assert reply_mismatch("clarify", calls=changed, response="Which?", awaits=True) is not None
    assert (
        reply_mismatch("decline", calls=listing, response="Sorry, no task matches.", awaits=False)
        is None
    )
    assert reply_mismatch("decline", calls=[], response="Here you go.", awaits=False) is not None
    assert (
        reply_mismatch("answer", calls=[], response="Hello! I keep your tasks.", awaits=False)
        is None
    )
    understood = "Sorry, I didn't understand that."
    assert reply_mismatch("answer", calls=[], response=understood, awaits=False) is not None
    assert asks_a_question("Here are 2 tasks:\n• 1: Buy milk?\nWhich one do you mean?")
    assert asks_a_question("I found 2:\n• 1: A\n• 2: B\nWhich one? Answer with its number.")
    assert not asks_a_question("Here is 1 task:\n• 1: Why?\nDone.")
    assert not asks_a_question("Sorry, I didn't get that. Try “What's pending?”.")
    assert not asks_a_question("You're welcome! Anything else I can do for your tasks?")


def test_the_final_list_is_complete_and_compared_by_title() -> None:
    tasks = [
        {"title": "Buy milk", "priority": "high", "completed": False, "tags": []},
        {"title": "Call mom", "priority": "medium", "completed": True, "tags": ["family"]},
    ]
    expected = [{"title": "call mom", "completed": True}, {"title": "Buy milk", "priority": "high"}]
    assert final_mismatch(expected, tasks) is None
    assert final_mismatch(expected[:1], tasks) == "unexpected tasks: 'Buy milk'"
    assert final_mismatch([*expected, {"title": "Pay bills"}], tasks) == "no task 'Pay bills'"
    assert "priority" in (final_mismatch([{"title": "Buy milk", "priority": "low"}], tasks) or "")
    tasks[0]["due_at"] = "2026-01-15T09:00:00.000000Z"
    assert final_mismatch([{"title": "Buy milk", "due_at": None}], tasks[:1]) is not None
    due = {"title": "Buy milk", "due_at": "2026-01-15T09:00:00+00:00"}
    assert final_mismatch([due], tasks[:1]) is None


def test_fillers_go_between_words_and_never_into_a_quoted_title() -> None:
    line = 'add "Pack socks, shirts, and chargers" #travel'
    seen = {with_filler(line, random.Random(seed)) for seed in range(200)}
    assert len(seen) > 5
    for variant in seen:
        assert '"Pack socks, shirts, and chargers"' in variant
        assert "#travel" in variant
        assert variant.replace("  ", " ") == variant
    assert with_filler("add buy milk", random.Random(1)) == with_filler(
        "add buy milk", random.Random(1)
    )
