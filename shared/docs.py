"""Swagger UI for an app's OpenAPI document, served entirely by the app itself.

Swagger UI's bundle, stylesheet and icon are its release files as the pinned
``fastapi-offline`` package ships them; the initializer is our own static file
(``shared/static/swagger-init.js``). Nothing comes from another origin: the page works on a
network without internet, and no third party serves script to a page where a user types a
password and holds a token. So the page's Content-Security-Policy, :data:`CSP`, allows
scripts, styles, images and requests from its own origin only, and no inline script. The
token that **Authorize** obtains stays in the page's memory (``persistAuthorization:
false``): nothing is written to the browser's storage.

The page names each asset ``<docs_url>/assets/<name>?v=<content hash>``: a new release is a
new URL, so the assets are cached for a year as immutable.
"""

from __future__ import annotations

import functools
import hashlib
import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import HTMLResponse, Response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# What the page carries on a service's own port; the gateway sets the same headers itself.
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"

_SWAGGER_UI = Path(fastapi_offline.__file__).parent / "static"
_OURS = Path(__file__).parent / "static"
_JS = "text/javascript; charset=utf-8"
_FILES = {
    "swagger-ui.css": (_SWAGGER_UI / "swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js": (_SWAGGER_UI / "swagger-ui-bundle.js", _JS),
    "swagger-init.js": (_OURS / "swagger-init.js", _JS),
    "favicon.png": (_SWAGGER_UI / "favicon.png", "image/png"),
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str

    @functools.cached_property
    def version(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:16]


@functools.cache
def _assets() -> dict[str, Asset]:
    """The assets, read once per process (about 1.7 MB) when the first app is built."""
    return {
        name: Asset(path.read_bytes(), media_type) for name, (path, media_type) in _FILES.items()
    }


def asset_paths(docs_url: str) -> list[str]:
    """Where the assets of the page at ``docs_url`` are served."""
    return [f"{docs_url}/assets/{name}" for name in _FILES]


def add_swagger_ui(
    router: FastAPI | APIRouter, *, docs_url: str, openapi_url: str, title: str
) -> None:
    """Serve Swagger UI for ``openapi_url`` at ``docs_url``, its assets under it (GET, HEAD)."""
    assets = _assets()
    urls = {name: f"{docs_url}/assets/{name}?v={asset.version}" for name, asset in assets.items()}
    page = _page(title=title, openapi_url=openapi_url, urls=urls)

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    router.add_route(docs_url, docs_page, methods=["GET"], include_in_schema=False)
    for name, asset in assets.items():
        router.add_route(
            f"{docs_url}/assets/{name}", _serve(asset), methods=["GET"], include_in_schema=False
        )


def _serve(asset: Asset) -> Callable[[Request], Awaitable[Response]]:
    headers = {"Cache-Control": ASSET_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}

    async def endpoint(request: Request) -> Response:
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    return endpoint


def _page(*, title: str, openapi_url: str, urls: dict[str, str]) -> str:
    def attr(value: str) -> str:
        return html.escape(value, quote=True)

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{attr(urls["swagger-ui.css"])}">
<link rel="icon" type="image/png" href="{attr(urls["favicon.png"])}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{attr(openapi_url)}"></div>
<script src="{attr(urls["swagger-ui-bundle.js"])}"></script>
<script src="{attr(urls["swagger-init.js"])}"></script>
</body>
</html>
"""
