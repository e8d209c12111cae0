"""The auth service's application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from auth_service.api import router
from auth_service.keys import load_key_set
from auth_service.passwords import PasswordHasher
from auth_service.service import AuthContext
from auth_service.settings import AuthSettings, get_settings
from shared.app import create_service_app, database
from shared.clock import Clock, utcnow
from shared.db import Database
from shared.tokens import IssuerKeys, StaticKeySource, TokenVerifier


def create_app(
    settings: AuthSettings | None = None,
    *,
    db: Database | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = load_key_set(settings)
        hasher = PasswordHasher(settings)
        # Our own tokens only, checked with our own key set: no HTTP round trip to ourselves.
        own = IssuerKeys(
            settings.jwt_issuer, settings.jwt_audience, "EdDSA", StaticKeySource(keys.public_keys())
        )
        app.state.verifier = TokenVerifier(
            [own],
            leeway=settings.jwt_leeway_seconds,
            clock=lambda: clock().timestamp(),
        )
        try:
            async with database(app, settings, name="auth", db=db):
                app.state.auth = AuthContext(
                    settings=settings,
                    keys=keys,
                    hasher=hasher,
                    clock=clock,
                    sessionmaker=app.state.db.sessionmaker,
                )
                yield
        finally:
            hasher.close()

    app = create_service_app("auth", "Auth service", settings, lifespan, docs_prefix="/api/auth")
    app.include_router(router)
    return app
