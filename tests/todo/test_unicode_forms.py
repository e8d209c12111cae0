"""One text, two spellings: text the todo API stores, filters or searches on is compared in
one Unicode form, so what looks the same is the same."""

from __future__ import annotations

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


async def test_a_tag_is_one_tag_however_its_letters_are_written(
    client: httpx.AsyncClient, alice: User
) -> None:
    """Full-width letters, the micro sign for mu, invisible characters at the edges, an
    accent typed as a combining mark: one tag each, kept readable (lower case, not folded:
    "straße" stays "straße")."""
    task = await create(
        client,
        alice,
        title="Post",
        tags=[
            "\uff37\uff2f\uff32\uff2b",
            "work",
            "\u200bwork\ufeff",
            "\u00b5",
            "\u03bc",
            "Stra\u00dfe",
            DECOMPOSED,
            COMPOSED,
        ],
    )
    assert task["tags"] == ["work", "\u03bc", "stra\u00dfe", "caf\u00e9"]
    for spelling in ("\uff37\uff2f\uff32\uff2b", "work\u200b", "WORK"):
        listed = await client.get("/api/tasks", params={"tag": spelling}, headers=alice.headers)
        assert [t["id"] for t in listed.json()] == [task["id"]], spelling
    listed = await client.get("/api/tasks", params={"tag": DECOMPOSED}, headers=alice.headers)
    assert [t["id"] for t in listed.json()] == [task["id"]]


async def test_a_title_saved_before_normalising_is_still_found_by_its_spelling(
    client: httpx.AsyncClient, alice: User, database: Database
) -> None:
    # A task written before: its title holds the accent as a combining mark.
    task = await create(client, alice, title="a task")
    await database.fetch_row(
        "UPDATE todo.tasks SET title = $2 WHERE id = $1",
        task["id"],
        f"{DECOMPOSED} noir",
        write=True,
    )
    for q in (COMPOSED, DECOMPOSED):
        listed = await client.get("/api/tasks", params={"q": q}, headers=alice.headers)
        assert [t["id"] for t in listed.json()] == [task["id"]], q
