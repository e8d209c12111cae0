"""Password hashing with argon2id (pwdlib), always off the event loop."""

from __future__ import annotations

import secrets

import anyio
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from auth_service.settings import AuthSettings


class PasswordHasher:
    """Hashes and verifies in worker threads, a bounded number at a time."""

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
        self._limiter = anyio.CapacityLimiter(settings.password_hash_workers)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hash.hash, password, limiter=self._limiter)

    async def verify(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """(valid, new hash when the stored one used weaker parameters)."""
        return await anyio.to_thread.run_sync(
            self._hash.verify_and_update, password, hashed, limiter=self._limiter
        )

    async def verify_dummy(self, password: str) -> None:
        """Spend the same time as a real check, for an email that has no account."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(password, self._dummy_hash)
