"""``python -m gateway``: serve on :8000 with uvloop and httptools.

Not ``shared.serve``: the gateway is the edge, so uvicorn must not rewrite the client
address from X-Forwarded-For (the gateway decides that itself, from its trusted-proxy list),
WebSocket upgrades are not proxied, and responses leave in one write (``gateway.server``).
"""

import os

import uvicorn

from gateway.server import CoalescingHttpToolsProtocol

uvicorn.run(
    "gateway.app:create_app",
    factory=True,
    host=os.environ.get("HOST", "127.0.0.1"),
    port=int(os.environ.get("PORT", "8000")),
    workers=int(os.environ.get("WEB_CONCURRENCY", "1")),
    loop="uvloop",
    http=CoalescingHttpToolsProtocol,
    ws="none",
    proxy_headers=False,
    log_config=None,
    access_log=False,
    server_header=False,
)
