"""One text, two spellings: text the todo API stores, filters or searches on is compared in
one Unicode form, so what looks the same is the same."""

from __future__ import annotations

import unicodedata

import httpx

from shared.db import Database
from tests.todo.conftest import User, create

DECOMPOSED, COMPOSED = "Cafe\u0301", "Caf\u00e9"


async def test_titles_and_descriptions_are_stored_composed_and_bounded_as_composed(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(
        client, alice, title=f"{DECOMPOSED} " + "e\u0301" * 190, description="e\u0301" * 1000
    )
    assert task["title"] == f"{COMPOSED} " + "\u00e9" * 190
    assert task["description"] == "\u00e9" * 1000

    renamed = await client.patch(
        f"/api/tasks/{task['id']}", json={"title": DECOMPOSED}, headers=alice.headers
    )
    assert renamed.json()["title"] == COMPOSED


async def test_a_search_finds_a_title_however_either_side_composes_its_accents(
    client: httpx.AsyncClient, alice: User
) -> None:
    composed = await create(client, alice, title=f"{COMPOSED} au lait")
    decomposed = await create(client, alice, title=f"{DECOMPOSED} noir")
    for q in (COMPOSED, DECOMPOSED, COMPOSED.upper(), "CAFE\u0301"):
        listed = await client.get("/api/tasks", params={"q": q}, headers=alice.headers)
        assert sorted(t["id"] for t in listed.json()) == sorted(
            [composed["id"], decomposed["id"]]
        ), q


async def test_tags_fold_case_beyond_ascii_and_width_and_edge_invisibles(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await create(
        client,
        alice,
        title="Post",
        tags=["Straße", "STRASSE", "\uff37\uff2f\uff32\uff2b", "work", "\u200bwork\ufeff", "µ"],
    )
    assert task["tags"] == ["strasse", "work", "μ"]
    for spelling in ("STRASSE", "straße", "\uff37\uff2f\uff32\uff2b", "work\u200b"):
        listed = await client.get("/api/tasks", params={"tag": spelling}, headers=alice.headers)
        assert [t["id"] for t in listed.json()] == [task["id"]], spelling
    assert unicodedata.is_normalized("NFC", task["tags"][0])


async def test_rows_saved_before_normalising_are_still_found_by_their_spelling(
    client: httpx.AsyncClient, alice: User, database: Database
) -> None:
    # Tasks written before: a title with a combining accent, a tag only lower-cased.
    task = await create(client, alice, title="a task")
    await database.fetch_row(
        "UPDATE todo.tasks SET title = $2, tags = $3 WHERE id = $1",
        task["id"],
        f"{DECOMPOSED} noir",
        ["straße", "\uff57\uff4f\uff52\uff4b"],
        write=True,
    )
    for params in (
        {"q": COMPOSED},
        {"q": DECOMPOSED},
        {"tag": "Straße"},
        {"tag": "\uff37\uff2f\uff32\uff2b"},
        {"tag": ["Straße", "\uff37\uff2f\uff32\uff2b"]},
    ):
        listed = await client.get("/api/tasks", params=params, headers=alice.headers)
        assert [t["id"] for t in listed.json()] == [task["id"]], params
