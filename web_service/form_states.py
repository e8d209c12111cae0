"""A refused form, carried across its redirect (POST-redirect-GET).

A form refused for any reason (a field's error, a wrong password, a limit, the API's
refusal) is answered as a form that succeeded is: with a 303, here to the page the form is
on, whose address names the refusal (``?form=<id>``). That page shows it again: the errors
at their fields and in the summary, and what was typed. The browser's history then holds only
pages it got with a GET, so Back and Forward never ask to send a form again (Chromium's
"Confirm Form Resubmission"), and a page gone back to shows the refusal as it was.

A state is JSON sealed with the session keys. Signed in, it is a row of ``web.form_states``
(a task's description alone may be kilobytes), bound to the session and ended with it; a
session keeps its latest ``PER_SESSION``. Before sign-in (the sign-in and sign-up forms: a
few hundred bytes) it is a cookie per page bound to the anonymous cookie, so a visitor still
writes no row. Either way a state lasts ``KEEP_SECONDS`` and is shown only on its own page to
its own browser. A password is never part of one: a refused form comes back with its
password fields empty.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.clock import Clock
from shared.db import Database
from web_service.crypto import InvalidToken, TokenBox

# The query parameter of a page's address that names the refused form it shows.
FORM_PARAM = "form"
# Long enough to go back to a refused form after a pause, short enough that a stale one is
# not met by chance.
KEEP_SECONDS = 30 * 60
# A session's latest refused forms kept: going Back over more than a few is rare, and each may
# be kilobytes. Refusals sent at once may pass it for a moment: the next one kept trims them.
PER_SESSION = 5
# A state sealed larger than this keeps its errors and drops what was typed: the page shows
# the refusal with the form as it is when opened. A form's own fields fit (the task forms'
# text is at most a few thousand characters); a row or a cookie is bounded whatever is sent.
STATE_MAX = 16 * 1024
# What a state holds besides what was typed: all a state too large keeps.
_NOT_TYPED = frozenset(
    {
        "errors",
        "profile_errors",
        "password_errors",
        "problem",
        "conflict",
        "confirmed",
        "idempotency_key",
        "status",
        "retry_at",
    }
)
_ID = re.compile(r"[A-Za-z0-9_-]{22}")
# A browser keeps a cookie of at most 4096 bytes, its name's included: a state sealed larger
# is kept without what was typed (``_sealed``), and a cookie larger is not one of ours.
_SEALED_MAX = 4096
_COOKIE_STATE_MAX = _SEALED_MAX - 64

# Inserted only while the session's row exists (signed out or ended meanwhile, its row is
# deleted and nothing is kept; one expired but not yet purged may still keep a state, which no
# page of it shows), and the session's expired states and those past its latest
# ``PER_SESSION`` go in the same statement. The row is locked as it is read: a sign-out
# deleting it at that moment either waits for the state (and deletes it with the session) or
# leaves no row to insert for.
_KEEP = (
    "WITH kept AS (INSERT INTO web.form_states "
    "(id, session_id_hash, page, state, expires_at, created_at) "
    "SELECT $1, id_hash, $3, $4, $5, $6 FROM web.sessions WHERE id_hash = $2 FOR KEY SHARE) "
    "DELETE FROM web.form_states WHERE session_id_hash = $2 AND (expires_at <= $6 OR id IN ("
    "SELECT id FROM web.form_states WHERE session_id_hash = $2 "
    "ORDER BY created_at DESC, id OFFSET $7))"
)
_RECALL = (
    "SELECT state FROM web.form_states "
    "WHERE id = $1 AND session_id_hash = $2 AND page = $3 AND expires_at > $4"
)


def with_form(location: str, form_id: str) -> str:
    """``location`` (a path, perhaps with a query) naming the refused form ``form_id``."""
    return f"{location}{'&' if '?' in location else '?'}{FORM_PARAM}={form_id}"


@dataclass(eq=False)
class FormStates:
    db: Database
    box: TokenBox
    clock: Clock

    async def keep(self, session_id_hash: str, page: str, state: dict[str, Any]) -> str:
        """Keeps ``state`` for the session's ``page``; its id."""
        form_id = secrets.token_urlsafe(16)
        now = self.clock()
        await self.db.fetch_row(
            _KEEP,
            form_id,
            session_id_hash,
            page,
            self._sealed(state, STATE_MAX),
            now + timedelta(seconds=KEEP_SECONDS),
            now,
            PER_SESSION - 1,
            write=True,
        )
        return form_id

    def _sealed(
        self,
        state: dict[str, Any],
        limit: int,
        *,
        wrap: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> bytes:
        """``state`` sealed (in what ``wrap`` makes of it); without what was typed when that
        would be over ``limit``."""
        sealed = self.box.seal(_json(wrap(state) if wrap else state))
        if len(sealed) <= limit:
            return sealed
        errors_only = {k: v for k, v in state.items() if k in _NOT_TYPED}
        return self.box.seal(_json(wrap(errors_only) if wrap else errors_only))

    async def recall(self, session_id_hash: str, page: str, form_id: str) -> dict[str, Any] | None:
        """The state the session kept for ``page`` as ``form_id``; None when there is none
        (another session's, another page's, expired, or never was)."""
        if not _ID.fullmatch(form_id):
            return None
        row = await self.db.fetch_row(_RECALL, form_id, session_id_hash, page, self.clock())
        if row is None:
            return None
        try:
            state = json.loads(self.box.open(bytes(row[0])))
        except (InvalidToken, ValueError):  # sealed with a key since removed
            return None
        return state if isinstance(state, dict) else None

    def seal(self, anon: str, page: str, state: dict[str, Any]) -> tuple[str, str]:
        """A state of an anonymous browser (``anon``, its anonymous cookie) for ``page``: its
        id, and the cookie value that holds it."""
        form_id = secrets.token_urlsafe(16)

        def bound(kept: dict[str, Any]) -> dict[str, Any]:
            return {"id": form_id, "anon": anon, "page": page, "state": kept}

        return form_id, self._sealed(state, _COOKIE_STATE_MAX, wrap=bound).decode()

    def unseal(
        self, sealed: str | None, anon: str | None, page: str, form_id: str
    ) -> dict[str, Any] | None:
        """The state ``sealed`` holds when it is ``form_id`` of this anonymous browser for
        ``page``, made within ``KEEP_SECONDS``; else None."""
        if not sealed or not anon or len(sealed) > _SEALED_MAX or not _ID.fullmatch(form_id):
            return None
        try:
            value = json.loads(self.box.open(sealed.encode(), ttl=KEEP_SECONDS))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            return None
        if not isinstance(value, dict) or (value.get("id"), value.get("page")) != (form_id, page):
            return None
        if not secrets.compare_digest(str(value.get("anon")).encode(), anon.encode()):
            return None
        state = value.get("state")
        return state if isinstance(state, dict) else None

    async def purge(self, *, batch: int = 1000, rounds: int = 100) -> int:
        """Deletes expired states, ``batch`` at a time while a batch is full, at most
        ``rounds`` batches (the rest next time); how many were deleted."""
        deleted = 0
        for _ in range(rounds):
            row = await self.db.fetch_row(
                "WITH gone AS (DELETE FROM web.form_states WHERE id IN ("
                "SELECT id FROM web.form_states WHERE expires_at <= $1 LIMIT $2) RETURNING 1) "
                "SELECT count(*) FROM gone",
                self.clock(),
                batch,
                write=True,
            )
            gone = int(row[0]) if row else 0
            deleted += gone
            if gone < batch:
                break
        return deleted


def _json(value: Any) -> str:
    # As typed (an emoji is 4 bytes, not the 12 of its escapes), without spaces.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
