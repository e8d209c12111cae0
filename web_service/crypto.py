"""Encryption at rest of the tokens a session holds, and of the anonymous CSRF token, with
the platform's sealing (``shared.sealing``: Fernet under a rotating key list) and the web
service's keys (``WEB_SESSION_KEYS`` or its ``_FILE``)."""

from __future__ import annotations

from shared.sealing import InvalidToken, SecretBox, load_secret_box, parse_keys
from web_service.settings import WebSettings

# The web service's name for the box: it seals session tokens.
TokenBox = SecretBox

__all__ = ["InvalidToken", "TokenBox", "load_token_box", "parse_keys"]


def load_token_box(settings: WebSettings) -> TokenBox:
    """Keys from ``WEB_SESSION_KEYS`` (or its ``_FILE``); in development a key generated on
    first run under ``.data/``. Outside development no key is never a default one."""
    return load_secret_box(
        settings.session_keys,
        variable="WEB_SESSION_KEYS",
        is_development=settings.is_development,
        dev_key_file=settings.dev_session_key_file,
    )
