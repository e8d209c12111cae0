"""Database URLs as Neon's console prints them, turned into what asyncpg accepts.

Unit tests of ``shared.db.connect_target``, the asyncpg dialect's view of the result, and real
connections through ``shared.db.create_engine``: to the embedded server, also through a
pooled-looking URL, and to a closed port (asyncpg must fail to connect, not on an argument).
"""

from __future__ import annotations

import re
import ssl
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import connect_target, create_engine, wait_for_database

NEON_DIRECT = (
    "postgresql://alex:AbC123dEf@ep-cool-darkness-123456.us-east-2.aws.neon.tech/dbname"
    "?sslmode=require&channel_binding=require"
)
NEON_POOLED = (
    "postgresql://alex:AbC123dEf@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/dbname"
    "?sslmode=require&channel_binding=require"
)
UNIQUE_NAME = re.compile(r"^__asyncpg_[0-9a-f]{32}__$")


def test_a_direct_neon_url_becomes_an_asyncpg_url_with_ssl() -> None:
    target = connect_target(NEON_DIRECT, connect_timeout=7)

    assert target.url.drivername == "postgresql+asyncpg"
    assert target.url.host == "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
    assert (target.url.username, target.url.password, target.url.database) == (
        "alex",
        "AbC123dEf",
        "dbname",
    )
    assert dict(target.url.query) == {}
    assert set(target.connect_args) == {"timeout", "ssl"}
    assert target.connect_args["timeout"] == 7
    assert isinstance(target.connect_args["ssl"], ssl.SSLContext)  # see test_db_tls.py
    assert not target.pooled


def test_a_pooled_neon_url_turns_prepared_statement_caching_off() -> None:
    target = connect_target(NEON_POOLED)

    assert target.pooled
    assert isinstance(target.connect_args["ssl"], ssl.SSLContext)
    assert target.connect_args["statement_cache_size"] == 0
    assert "channel_binding" not in target.connect_args
    assert dict(target.url.query) == {"prepared_statement_cache_size": "0"}
    name_of = target.connect_args["prepared_statement_name_func"]
    names = {name_of() for _ in range(100)}
    assert len(names) == 100
    assert all(UNIQUE_NAME.match(name) for name in names)


@pytest.mark.parametrize("url", [NEON_DIRECT, NEON_POOLED], ids=["direct", "pooled"])
def test_the_asyncpg_dialect_accepts_the_translated_url(url: str) -> None:
    target = connect_target(url)
    engine = create_async_engine(target.url, connect_args=target.connect_args)

    args, kwargs = engine.dialect.create_connect_args(engine.url)

    assert args == []
    assert "sslmode" not in kwargs
    assert "channel_binding" not in kwargs
    assert kwargs["host"] == make_url(url).host


@pytest.mark.parametrize("url", [NEON_DIRECT, NEON_POOLED], ids=["direct", "pooled"])
def test_the_engine_factory_gives_the_dialect_no_libpq_only_options(url: str) -> None:
    engine = create_engine(url)

    _, kwargs = engine.dialect.create_connect_args(engine.url)

    assert not {"sslmode", "channel_binding"} & set(kwargs)


@pytest.mark.parametrize("url", [NEON_DIRECT, NEON_POOLED], ids=["direct", "pooled"])
async def test_asyncpg_takes_every_connect_argument_and_fails_only_to_connect(url: str) -> None:
    # Same options, but the host is the loopback and the port is closed: a refusal proves
    # asyncpg accepted ssl, statement_cache_size and the statement name function.
    closed = make_url(url).set(port=1).update_query_dict({"host": "127.0.0.1"})
    engine = create_engine(closed.render_as_string(hide_password=False), connect_timeout=2)
    try:
        with pytest.raises(ConnectionRefusedError):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgres://u:p@h/d", "postgresql+asyncpg"),
        ("postgresql://u:p@h/d", "postgresql+asyncpg"),
        ("postgresql+psycopg://u:p@h/d", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u:p@h/d", "postgresql+asyncpg"),
    ],
)
def test_any_postgresql_scheme_becomes_asyncpg(raw: str, driver: str) -> None:
    assert connect_target(raw).url.drivername == driver


@pytest.mark.parametrize(
    "raw",
    ["mysql://u:p@h/d", "sqlite:///x.db", "postgresql://u:p@h/d?sslmode=sometimes"],
    ids=["mysql", "sqlite", "unknown sslmode"],
)
def test_other_databases_and_unknown_sslmodes_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported database URL scheme|unknown sslmode"):
        connect_target(raw)


def neon_shaped(database_url: str, *, pooled: bool) -> str:
    """The test server's URL dressed as Neon's: a Neon host name (the real host moves to the
    ``host`` query item, which asyncpg prefers). No TLS: the embedded server listens on a Unix
    socket (test_db_tls_server.py connects over verified TLS)."""
    url = make_url(database_url)
    query: dict[str, Any] = dict(url.query)
    query.setdefault("host", url.host or "localhost")
    query.setdefault("sslmode", "disable")
    host = "ep-cool-darkness-123456" + ("-pooler" if pooled else "") + ".eu-central-1.aws.neon.tech"
    neon = url.set(drivername="postgresql", host=host).update_query_dict(query)
    return neon.render_as_string(hide_password=False)


async def test_the_embedded_server_is_reached_through_the_engine_factory(
    database_url: str,
) -> None:
    engine = create_engine(database_url, application_name="url-test")
    try:
        async with engine.connect() as connection:
            one = (await connection.execute(text("SELECT 1"))).scalar_one()
            name = (await connection.execute(text("SHOW application_name"))).scalar_one()
    finally:
        await engine.dispose()

    assert (one, name) == (1, "url-test")


@pytest.mark.parametrize("pooled", [False, True], ids=["direct", "pooled"])
async def test_a_neon_shaped_url_reaches_a_real_server(database_url: str, pooled: bool) -> None:
    engine = create_engine(neon_shaped(database_url, pooled=pooled))
    try:
        async with engine.connect() as connection:
            answers = [
                (
                    await connection.execute(text("SELECT CAST(:x AS integer) + 1"), {"x": i})
                ).scalar_one()
                for i in range(3)
            ]
            names = (
                (await connection.execute(text("SELECT name FROM pg_prepared_statements")))
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()

    assert answers == [1, 2, 3]
    if pooled:
        # Every statement got a unique name, as PgBouncer in transaction mode needs.
        assert names
        assert all(UNIQUE_NAME.match(name) for name in names)


async def test_waiting_for_an_unreachable_database_gives_up_after_the_attempts() -> None:
    engine = create_engine("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)
    try:
        with pytest.raises(RuntimeError, match="unreachable after 2 attempts"):
            await wait_for_database(engine, attempts=2, delay=0.01)
    finally:
        await engine.dispose()
