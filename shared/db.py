"""The data layer: ``Database`` (one pool, ORM units of work, single driver statements).

Takes a PostgreSQL URL exactly as Neon's console prints it (``sslmode``, ``channel_binding``,
``-pooler`` hosts) or as the embedded server gives it (a Unix socket in ``?host=``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, Unpack

import asyncpg
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.errors import AppError, OutcomeUnknown

logger = logging.getLogger(__name__)

# Constraint names that Alembic can diff and a reader can recognise.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_metadata(schema: str) -> MetaData:
    """The MetaData for one service: its own schema and our naming convention."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_CHANNEL_BINDINGS = ("disable", "prefer", "require")
SYSTEM_TRUST_STORE = "system"


@dataclass(frozen=True)
class ConnectTarget:
    """What ``create_async_engine`` needs: the cleaned URL and asyncpg's connect arguments."""

    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)
    pooled: bool = False


def connect_target(raw_url: str, *, connect_timeout: float = 10.0) -> ConnectTarget:
    """Turn any PostgreSQL URL into an asyncpg URL plus connect arguments asyncpg accepts.

    The TLS parameters (``sslmode``, ``channel_binding``, ``sslrootcert``) become one ``ssl``
    argument (see ``tls_argument``); a protection the driver cannot give is logged here, once
    per engine.
    """
    url = make_url(raw_url)
    if url.drivername in {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}:
        url = url.set(drivername="postgresql+asyncpg")
    if url.drivername != "postgresql+asyncpg":
        raise ValueError(f"unsupported database URL scheme: {url.drivername}")

    query = dict(url.query)
    tls = tls_argument(
        sslmode=_single(query, "sslmode"),
        channel_binding=_single(query, "channel_binding"),
        sslrootcert=_single(query, "sslrootcert"),
    )
    # Any other libpq TLS parameter (client certificates, CRLs, protocol bounds, direct TLS)
    # is refused rather than silently dropped or handed to asyncpg, which would refuse it.
    unsupported = sorted(
        name for name in query if name.startswith("ssl") or name in {"requiressl", "gssencmode"}
    )
    if unsupported:
        raise ValueError(
            f"database URL parameter not supported: {', '.join(unsupported)} "
            "(the platform supports sslmode, sslrootcert and channel_binding; "
            "no client certificates)"
        )
    connect_args: dict[str, Any] = {"timeout": connect_timeout}
    if tls.ssl is not None:
        connect_args["ssl"] = tls.ssl
    if tls.warning:
        logger.warning("database %s: %s", url.host or url.query.get("host"), tls.warning)

    host = url.host or ""
    pooled = host.split(".", 1)[0].endswith("-pooler")
    if pooled:
        # PgBouncer in transaction mode: a prepared statement may land on another server
        # connection, so asyncpg's statement cache is off and every name is unique.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
        query["prepared_statement_cache_size"] = "0"

    return ConnectTarget(url=url.set(query=query), connect_args=connect_args, pooled=pooled)


def _single(query: dict[str, Any], name: str) -> str | None:
    """Remove one parameter from the URL's query; given twice it is ambiguous, so refused."""
    value = query.pop(name, None)
    if isinstance(value, tuple):
        raise ValueError(f"database URL parameter given more than once: {name}")
    return None if value is None else str(value)


@dataclass(frozen=True)
class TlsArgument:
    """asyncpg's ``ssl`` argument for one URL, and what the log should say about it.

    ``ssl`` is None (asyncpg's default: ``prefer`` over TCP, none on a Unix socket), False
    (no TLS), ``"allow"``/``"prefer"`` (asyncpg's own opportunistic modes, as libpq's), or a
    context built here, which asyncpg treats as TLS required.
    """

    ssl: ssl_module.SSLContext | str | bool | None
    warning: str | None = None


def tls_argument(
    *, sslmode: str | None, channel_binding: str | None, sslrootcert: str | None
) -> TlsArgument:
    """libpq's TLS parameters as asyncpg's ``ssl`` argument, never weaker than asked.

    - ``verify-full``: certificate chain and host name checked; ``verify-ca``: the chain only.
      Both against the ``sslrootcert`` file, or the system trust store when it is absent or
      ``system`` (libpq would read ``~/.postgresql/root.crt``; a container has none).
    - ``channel_binding=require``: asyncpg never binds the channel (its SCRAM sends ``n,,``),
      so the server is authenticated by its certificate and host name instead (verify-full),
      which Neon's publicly trusted certificates pass. Logged.
    - ``require``: libpq's meaning, encrypted without verification (logged), or the chain
      checked when an ``sslrootcert`` file is given (libpq's rule too).
    - ``sslrootcert=system`` means verify-full, and a weaker ``sslmode`` with it is refused,
      as libpq (16+) does: any public certificate passes a chain-only check.
    - ``disable``, ``allow``, ``prefer`` and no ``sslmode`` keep their libpq meaning; a CA file
      with them would be ignored, so it is refused instead.
    """
    if sslmode is not None and sslmode not in _SSLMODES:
        raise ValueError(f"unknown sslmode: {sslmode}")
    if channel_binding is not None and channel_binding not in _CHANNEL_BINDINGS:
        raise ValueError(f"unknown channel_binding: {channel_binding}")
    if sslrootcert == "":
        raise ValueError("sslrootcert is empty: give a CA file or 'system'")

    store = "the system trust store" if sslrootcert in (None, SYSTEM_TRUST_STORE) else sslrootcert
    mode = sslmode
    warning = None
    if channel_binding == "require":
        if sslmode == "disable":
            raise ValueError("channel_binding=require needs TLS, but sslmode=disable")
        mode = "verify-full"
        warning = (
            "channel_binding=require cannot be honoured (asyncpg has no channel binding): "
            f"the server's certificate and host name are verified against {store} instead"
        )
    elif sslrootcert == SYSTEM_TRUST_STORE and sslmode is None:
        mode = "verify-full"
    if sslrootcert == SYSTEM_TRUST_STORE and mode != "verify-full":
        raise ValueError(f"sslrootcert=system requires sslmode=verify-full, not {mode}")
    if sslrootcert is not None and mode in (None, "disable", "allow", "prefer"):
        raise ValueError(
            f"sslrootcert is given but sslmode={mode or 'prefer'} would not use it: "
            "use sslmode=verify-full"
        )

    if mode is None:
        return TlsArgument(ssl=None)
    if mode == "disable":
        return TlsArgument(ssl=False)
    if mode in ("allow", "prefer"):
        return TlsArgument(ssl=mode)
    if mode == "require" and sslrootcert is None:
        context = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
        context.minimum_version = ssl_module.TLSVersion.TLSv1_2
        return TlsArgument(
            ssl=context,
            warning=(
                "sslmode=require encrypts the connection but does not verify the server's "
                "certificate (libpq's meaning); use sslmode=verify-full to verify it"
            ),
        )

    cafile = None if sslrootcert in (None, SYSTEM_TRUST_STORE) else sslrootcert
    try:
        context = ssl_module.create_default_context(cafile=cafile)
    except (OSError, ssl_module.SSLError) as exc:
        raise ValueError(f"sslrootcert {cafile}: cannot load CA certificates ({exc})") from exc
    context.minimum_version = ssl_module.TLSVersion.TLSv1_2
    if mode == "verify-full":
        return TlsArgument(ssl=context, warning=warning)
    # verify-ca, or require with a CA file: the chain is checked, the host name is not.
    context.check_hostname = False
    if cafile is None:
        warning = (
            "sslmode=verify-ca against the system trust store accepts any publicly trusted "
            "certificate, whatever its host name; use sslmode=verify-full"
        )
    return TlsArgument(ssl=context, warning=warning)


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


class PoolOptions(TypedDict, total=False):
    """How an engine's pool behaves (see ``engine_for``, which holds the defaults)."""

    pool_size: int
    max_overflow: int
    pool_timeout: float
    application_name: str | None
    ping_after_idle: float | None


def create_engine(
    raw_url: str, *, connect_timeout: float = 10.0, **pool: Unpack[PoolOptions]
) -> AsyncEngine:
    """An engine whose pool checks connections before use (see ``engine_for``)."""
    return engine_for(connect_target(raw_url, connect_timeout=connect_timeout), **pool)


def engine_for(
    target: ConnectTarget,
    *,
    pool_size: int = 10,
    max_overflow: int = 0,
    pool_timeout: float = 10.0,
    application_name: str | None = None,
    ping_after_idle: float | None = None,
) -> AsyncEngine:
    """An engine whose pool checks connections before use.

    The pool is fixed by default (``max_overflow=0``): an overflow connection is closed on
    check-in, so a pool that overflows under steady load opens a new server backend per burst.
    A request that finds every connection busy waits up to ``pool_timeout`` seconds.

    A connection the server closed while it sat in the pool (a restart, a terminated backend,
    an idle timeout) is known closed to asyncpg without a round trip: the checkout replaces it
    instead of failing the request that drew it. ``ping_after_idle=None`` also checks every
    checkout (SQLAlchemy's pre-ping: three round trips with asyncpg). A number of seconds
    checks only connections that sat idle in the pool longer than that, as HikariCP does: a
    busy pool pays nothing per request, while a pool left idle (a Neon compute that scaled to
    zero, a restarted server) is still checked before use.
    """
    connect_args = dict(target.connect_args)
    if application_name:
        connect_args["server_settings"] = {"application_name": application_name}
    engine = create_async_engine(
        target.url,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=ping_after_idle is None,
        pool_recycle=1800,
        # A failed statement's error names its SQL, never its values: those are emails,
        # password hashes, task titles, message text, and the error reaches the logs.
        hide_parameters=True,
    )
    _check_on_checkout(engine, ping_after_idle)
    return engine


_IDLE_SINCE = "shared.db.idle_since"


def _check_on_checkout(engine: AsyncEngine, idle_seconds: float | None) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _returned(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _borrowed(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        # The pool discards a connection that fails here and checks out a fresh one.
        driver = record.driver_connection
        if driver is not None and driver.is_closed():
            raise DisconnectionError("the server closed this pooled connection")
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_seconds is None or idle_since is None:
            return  # pre-pinged already, or just connected
        if time.monotonic() - idle_since <= idle_seconds:
            return  # just used
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("connection failed its idle check") from exc


_DRIVER_OUTAGES = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or during, and so on (each once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _refused_out_of_step(exc: BaseException) -> bool:
    """asyncpg refused a call before writing anything, its protocol out of step with the
    server: the goodbye (FATAL) of a server shutting down was read while the connection sat
    idle in the pool, and the close that follows it not yet. asyncpg closes the connection.
    Only this message of its catch-all ``InternalClientError``: the others (a codec missing,
    a stale statement cache) are bugs, not outages. One exception, not its causes."""
    return isinstance(exc, asyncpg.exceptions.InternalClientError) and str(exc).startswith(
        "cannot switch to state "
    )


def is_database_outage(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (down, restarting, a
    network cut), as opposed to a bug or a bad query: worth a 503 and a retry, not a 500."""
    for current in _causes(exc):
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        # Every pooled connection stayed busy for the whole pool timeout: no capacity now.
        if isinstance(current, PoolTimeout):
            return True
        # Connecting raises the driver's own errors unwrapped: refused, no socket, timeout.
        if isinstance(current, DisconnectionError | OSError):
            return True
        # The driver's own, met where a hot path reads through asyncpg directly: the server
        # went away (08xxx) or is shutting down, crashed or still starting (57P01-57P03).
        if isinstance(current, _DRIVER_OUTAGES):
            return True
        # asyncpg's answer when the connection closed under a call already made on it.
        if isinstance(current, asyncpg.InterfaceError) and "connection is closed" in str(current):
            return True
        if _refused_out_of_step(current):
            return True
    return False


def is_statement_cancelled(exc: BaseException) -> bool:
    """The server cancelled the statement (SQLSTATE 57014): it ran past the role's
    ``statement_timeout`` (shared/bootstrap.sql), or an operator cancelled it. Nothing it did
    was committed, and the database is there: worth a 503 and a retry, not a 500."""
    return any(isinstance(c, asyncpg.exceptions.QueryCanceledError) for c in _causes(exc))


# PostgreSQL aborted the transaction because it lost a race with another: to break a deadlock
# (40P01) or to keep serializable isolation (40001). Nothing it did was committed.
_TRANSACTION_CONFLICTS = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


def is_transaction_conflict(exc: BaseException) -> bool:
    """The server aborted the transaction to break a deadlock or a serialization conflict
    with another one: the work itself is sound, and run again it goes through."""
    return any(isinstance(c, _TRANSACTION_CONFLICTS) for c in _causes(exc))


async def wait_for_database(engine: AsyncEngine, *, attempts: int = 10, delay: float = 0.5) -> None:
    """Bounded retry at startup: a database that is still booting is not a crash."""
    for attempt in range(1, attempts + 1):
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return
        except (OSError, TimeoutError, ConnectionError) as exc:
            await _backoff(attempt, attempts, delay, exc)
        except Exception as exc:  # asyncpg raises its own types for a server still starting
            if "CannotConnectNow" not in type(exc).__name__ and "starting up" not in str(exc):
                raise
            await _backoff(attempt, attempts, delay, exc)


async def _backoff(attempt: int, attempts: int, delay: float, exc: BaseException) -> None:
    if attempt == attempts:
        raise RuntimeError(f"database unreachable after {attempts} attempts: {exc}") from exc
    wait = min(delay * 2 ** (attempt - 1), 5.0)
    logger.warning(
        "database not reachable (%s); retry %d/%d in %.1fs", exc, attempt, attempts, wait
    )
    await asyncio.sleep(wait)


async def commit(session: AsyncSession) -> None:
    """Commit; a connection lost once COMMIT may have reached the server is ``OutcomeUnknown``.

    PostgreSQL may have committed before the connection went (or the answer may be what was
    lost), so neither "saved" nor "not saved" is true. A connection the driver already knew
    closed never carried the COMMIT: the transaction died with it, an ordinary outage.
    """
    try:
        await session.commit()
    except Exception as exc:
        _raise_if_outcome_unknown(exc)
        raise


def _raise_if_outcome_unknown(exc: Exception) -> None:
    """``OutcomeUnknown`` from ``exc`` if it is a connection lost once a commit was sent."""
    if is_database_outage(exc) and not _closed_before_sending(exc):
        logger.warning("connection lost while committing; the outcome is unknown: %r", exc)
        raise OutcomeUnknown() from exc


def _closed_before_sending(exc: BaseException) -> bool:
    """asyncpg refused the call on a connection it knew closed (``InterfaceError``) or out of
    step with a server that said goodbye, without writing to it; a connection lost during the
    call raises its protocol or server errors."""
    return any(
        isinstance(c, asyncpg.InterfaceError) or _refused_out_of_step(c) for c in _causes(exc)
    )


class Session(AsyncSession):
    """A unit of work's session: the ORM, and ``fetch_row`` for one statement inside the
    unit's transaction."""

    async def fetch_row(self, sql: str, *args: Any, write: bool = False) -> Sequence[Any] | None:
        """As ``Database.fetch_row``, inside this session's transaction: it commits or rolls
        back with the unit of work (which also judges a lost commit, so ``write`` changes
        nothing here)."""
        connection = await self.connection()
        result = await connection.exec_driver_sql(sql, args)
        return result.first() if result.returns_rows else None


class Statements(Protocol):
    """Where a single statement runs: a ``Database`` (alone, committed by itself) or a unit
    of work's ``Session`` (inside its transaction). Service functions made of single
    statements take either, so an HTTP route runs them in one round trip while a caller
    that groups several writes (the MCP tools, the tests) keeps them in one transaction."""

    async def fetch_row(
        self, sql: str, *args: Any, write: bool = False
    ) -> Sequence[Any] | None: ...


def statements(target: Statements | AsyncSession) -> Statements:
    """``target`` as ``Statements``: a session typed as sqlmodel's ``AsyncSession`` is one
    that ``Database.unit_of_work()`` made, hence a ``Session``."""
    if isinstance(target, AsyncSession) and not isinstance(target, Session):
        raise TypeError("a session that Database.unit_of_work() did not make")
    return target


class Database:
    """One service's PostgreSQL: its one connection pool, and the two ways code uses it.

    - ``unit_of_work()``: an ORM session, committed when the block ends (rolled back on an
      error). Service functions take the session, flush and never commit.
    - ``fetch_row(sql, *args)``: one statement (``$n`` placeholders) straight on the asyncpg
      connection of a pooled connection, one round trip, no ORM. Each is its own implicit
      transaction, so a unit of work done this way is a single statement (CTEs make that
      easy). For hot reads and single-statement writes where the ORM adds nothing. The unit
      of work's ``Session`` runs the same statements inside its transaction (``Statements``).

    Made once per process in the service's lifespan (``Database.open``); the tests bind one to
    their rolled-back connection (``Database.bound_to``), so they run these same paths.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        pooled: bool = False,
        connection: AsyncConnection | None = None,
    ) -> None:
        """``pooled``: a transaction-mode pooler (PgBouncer, Neon's ``-pooler`` hosts) sits in
        front, as ``ConnectTarget.pooled`` says. ``connection``: run everything on this one
        connection instead of the pool (the tests' rolled-back transaction)."""
        self.engine = engine
        self.pooled = pooled
        self._connection = connection
        self.sessionmaker: async_sessionmaker[Session]
        if connection is None:
            self.sessionmaker = async_sessionmaker(
                engine, class_=Session, expire_on_commit=False, autoflush=False
            )
        else:
            # On a shared connection a session's commit only releases a savepoint.
            self.sessionmaker = async_sessionmaker(
                connection,
                class_=Session,
                expire_on_commit=False,
                autoflush=False,
                join_transaction_mode="create_savepoint",
            )

    @classmethod
    def open(
        cls, raw_url: str, *, connect_timeout: float = 10.0, **pool: Unpack[PoolOptions]
    ) -> Database:
        """A database with its own pool; nothing connects until first use."""
        target = connect_target(raw_url, connect_timeout=connect_timeout)
        return cls(engine_for(target, **pool), pooled=target.pooled)

    @classmethod
    def bound_to(cls, connection: AsyncConnection) -> Database:
        """Everything on ``connection``, inside the transaction it is in (the tests')."""
        return cls(connection.engine, connection=connection)

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[Session]:
        """One session per unit of work: commit on success, roll back on error.

        An ``AppError`` with ``keep_changes`` still commits: the error is the answer, but the
        bookkeeping it records (a failed login, a revoked token family) must stay.
        """
        async with self.sessionmaker() as session:
            try:
                yield session
            except AppError as exc:
                if exc.keep_changes:
                    await session.commit()
                else:
                    await session.rollback()
                raise
            except BaseException:
                await session.rollback()
                raise
            else:
                # Flushed first: a connection lost while flushing is lost before COMMIT, so
                # nothing was saved and the ordinary outage answer (a 503 to retry) is right.
                await session.flush()
                await commit(session)

    async def fetch_row(self, sql: str, *args: Any, write: bool = False) -> Sequence[Any] | None:
        """The first row of one statement (``$n`` placeholders), read by position; None if
        none. A connection that died under the statement is invalidated, not pooled again.

        Behind a transaction-mode pooler asyncpg's prepare and execute are separate exchanges
        that must reach the same server connection, so there the statement runs inside an
        explicit transaction.

        ``write``: the statement changes data, so a connection lost once its commit was sent
        (the statement itself on a direct server, the COMMIT behind a pooler) is
        ``OutcomeUnknown``, as in ``unit_of_work``; one lost before (getting a connection, or
        a statement still inside the pooler's transaction) is the ordinary outage. On a
        database bound to one connection (the tests') the statement runs inside that
        connection's transaction and commits nothing itself.
        """
        async with self._connect() as connection:
            # Just checked out, hence valid: read without I/O here rather than through
            # get_raw_connection(), which costs another hop into SQLAlchemy's greenlet.
            checked_out = connection.sync_connection
            assert checked_out is not None  # started by its context manager
            driver = checked_out.connection.driver_connection
            assert driver is not None  # a valid connection has its driver connection
            committing = False
            try:
                if self.pooled:
                    async with driver.transaction():
                        row: Sequence[Any] | None = await driver.fetchrow(sql, *args)
                        committing = write  # leaving the block sends COMMIT
                else:
                    # On its own connection the statement commits itself.
                    committing = write and self._connection is None
                    row = await driver.fetchrow(sql, *args)
            except BaseException as exc:
                if driver.is_closed():
                    await connection.invalidate()
                if committing and isinstance(exc, Exception):
                    _raise_if_outcome_unknown(exc)
                raise
            return row

    def _connect(self) -> AbstractAsyncContextManager[AsyncConnection]:
        if self._connection is not None:
            return nullcontext(self._connection)
        return self.engine.connect()

    async def ping(self) -> None:
        """One trivial statement (readiness)."""
        await self.fetch_row("SELECT 1")

    @property
    def can_listen(self) -> bool:
        """Whether ``dedicated_connection`` is possible: a session of our own on the server,
        which a transaction pooler does not give (a LISTEN there would hear nothing) and a
        database bound to one connection (the tests' rolled-back one) does not have."""
        return not self.pooled and self._connection is None

    @asynccontextmanager
    async def dedicated_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A driver connection of its own for as long as the block lasts (a LISTEN), opened
        as the pool's are (URL, TLS, timeouts, application name) but taken out of the pool,
        so it does not occupy one of its places; closed when the block ends."""
        if not self.can_listen:
            raise RuntimeError("no dedicated connection behind a transaction pooler or when bound")
        async with self.engine.connect() as connection:
            proxied = await connection.get_raw_connection()
            driver = proxied.driver_connection
            assert driver is not None  # just checked out, hence valid
            # Detached, the connection leaves the pool for good: closing it closes it.
            await connection.run_sync(lambda sync_connection: sync_connection.detach())
            try:
                yield driver
            finally:
                # Dropped without a goodbye: a graceful close would wait on a server that
                # may be unreachable, and a session that only listened has nothing to end.
                driver.terminate()
                await connection.invalidate()
