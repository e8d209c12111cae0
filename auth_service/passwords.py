"""Password hashing with argon2id (pwdlib), always off the event loop.

A password is hashed and checked in Unicode normal form NFKC (NIST SP 800-63B, 5.1.1.2):
"é" typed as one code point or as "e" and a combining accent, or a full-width letter from an
East Asian keyboard, is the same password whichever device types it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import sys
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from auth_service.settings import AuthSettings
from shared.errors import ServiceUnavailable

T = TypeVar("T")


class PasswordCheckBusy(
    ServiceUnavailable,
    code="password_check_busy",
    message="Too many passwords are being checked right now; please retry shortly",
    keep_changes=True,  # the sign-in's reserved failure is given back (see ``service``)
):
    """More password hashes are waiting than the line holds: refused at once, not queued."""

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


def normalised(password: str) -> str:
    """The password as it is hashed, checked and measured: NFKC."""
    return unicodedata.normalize("NFKC", password)


def _lower_thread_priority(steps: int) -> None:
    """Make the calling thread yield the CPU to the event loop's thread: ``steps`` nicer than
    it was (at most 19).

    Hashing is CPU-bound and tolerates latency; the requests in flight on the loop do not.
    Linux schedules threads individually, so one thread's niceness leaves the rest of the
    process alone. Elsewhere this is a no-op.
    """
    if steps > 0 and sys.platform.startswith("linux"):
        thread = threading.get_native_id()
        with contextlib.suppress(OSError):
            current = os.getpriority(os.PRIO_PROCESS, thread)
            os.setpriority(os.PRIO_PROCESS, thread, min(19, current + steps))


class PasswordHasher:
    """Hashes and verifies on a few dedicated, low-priority threads (``close()`` ends them)."""

    def __init__(self, settings: AuthSettings) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.argon2_time_cost,
                    memory_cost=settings.argon2_memory_kib,
                    parallelism=settings.argon2_parallelism,
                ),
            )
        )
        # At most `password_hash_workers` hashes run at once; the rest wait in line, so
        # logins cannot take every core from the requests that are already in flight.
        self._executor = ThreadPoolExecutor(
            max_workers=settings.password_hash_workers,
            thread_name_prefix="password-hash",
            initializer=_lower_thread_priority,
            initargs=(settings.password_hash_niceness,),
        )
        self._dummy_hash: str | None = None
        # Hashes running or waiting, and how many may: a flood of sign-ins beyond this is
        # answered 503 at once instead of queueing work whose clients have given up waiting.
        self._pending = 0
        self._capacity = settings.password_hash_workers + settings.password_hash_queue

    async def _run(self, function: Callable[..., T], *args: str) -> T:
        if self._pending >= self._capacity:
            raise PasswordCheckBusy()
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(function, *args))
        finally:
            self._pending -= 1

    async def hash(self, password: str) -> str:
        return await self._run(self._hash.hash, normalised(password))

    async def verify(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """(valid, a new hash to store when the stored one is not today's).

        A hash made before passwords were normalised is of the password as it was typed: when
        the normal form does not match and differs from what was typed, the typed form is
        checked too, and a match is hashed again in the normal form. So at most two checks a
        guess, and two only for a password that normalisation changes, for a known email and
        an unknown one alike (``verify_dummy`` goes through here).
        """
        normal = normalised(password)
        valid, new_hash = await self._run(self._hash.verify_and_update, normal, hashed)
        if valid or normal == password:
            return valid, new_hash
        if not await self._run(self._hash.verify, password, hashed):
            return False, None
        return True, await self.hash(normal)

    async def verify_dummy(self, password: str) -> None:
        """Spend the same time as a real check, for an email that has no account."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(password, self._dummy_hash)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
