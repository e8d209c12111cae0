"""The platform's outgoing HTTPS: whom its httpx clients trust."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def system_trust() -> ssl.SSLContext:
    """The TLS context httpx makes for ``verify=True`` (certifi's CA bundle, or
    ``SSL_CERT_FILE``/``SSL_CERT_DIR``), made once per process. Every client is given it: a
    client made without one parses the CA bundle again, about 20 ms of CPU at each app start
    and each webhook delivery round."""
    return httpx.create_ssl_context()
