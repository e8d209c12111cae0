"""``python -m gateway``: serve on :8000 with uvloop and httptools.

Not ``shared.serve``: the gateway is the edge, so uvicorn must not rewrite the client
address from X-Forwarded-For (the gateway decides that itself, from its trusted-proxy list),
WebSocket upgrades are not proxied, and responses leave in one write (``gateway.server``),
within the HTTP limits of the gateway's settings (``shared.server``).
"""

import gc
import os

import uvicorn

from gateway.server import CoalescingHttpToolsProtocol
from gateway.settings import get_settings
from shared.server import HttpLimits, http_protocol

# Every proxied request allocates a few hundred short-lived objects. Collecting the youngest
# generation every 10,000 allocations instead of 700 lets most of them die by reference
# counting first, and freezing what the imports created keeps it out of every full
# collection. (py-spy: the collector was about 4% of the gateway's CPU with the defaults.)
gc.freeze()
gc.set_threshold(10_000, 20, 50)

uvicorn.run(
    "gateway.app:create_app",
    factory=True,
    host=os.environ.get("HOST", "127.0.0.1"),
    port=int(os.environ.get("PORT", "8000")),
    workers=int(os.environ.get("WEB_CONCURRENCY", "1")),
    loop="uvloop",
    http=http_protocol(HttpLimits.of(get_settings()), CoalescingHttpToolsProtocol),
    ws="none",
    proxy_headers=False,
    log_config=None,
    access_log=False,
    server_header=False,
)
