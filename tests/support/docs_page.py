"""What every Swagger UI page of the platform must be: self-contained and strictly confined.

``assert_self_contained_docs(client, docs_url, openapi_url)`` checks, over real HTTP, a page
served by the gateway or by a service on its own port: it names only same-origin assets, each
served (200, its content type, cacheable); it has no inline script or style; its
Content-Security-Policy allows nothing from another origin and no inline script; Swagger UI
keeps no token in the browser's storage (``persistAuthorization`` off).
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx

MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
URL_ATTRIBUTES = {"src", "href", "action", "formaction", "data", "poster", "srcset"}


class _Page(HTMLParser):
    """The URLs a page loads, and anything inline (script text, style, handlers)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value is not None:
                self.urls.append(value)
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = True
            if not dict(attrs).get("src"):
                self.inline.append("<script> without src")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(f"script text {data.strip()[:40]!r}")


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


async def assert_self_contained_docs(
    client: httpx.AsyncClient, docs_url: str, openapi_url: str
) -> None:
    page = await client.get(docs_url)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "://" not in page.text  # no absolute URL at all, to any host

    parsed = _Page()
    parsed.feed(page.text)
    assert parsed.inline == []
    assert parsed.urls, "the page loads Swagger UI's assets"
    for url in parsed.urls:
        parts = urlsplit(url)
        # Same origin: a path, no scheme and no host.
        assert (parts.scheme, parts.netloc) == ("", ""), url
        assert parts.path.startswith(f"{docs_url}/assets/"), url
    assert f'data-openapi-url="{openapi_url}"' in page.text

    csp = csp_directives(page.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    for directive, sources in csp.items():
        for source in sources:
            # Keywords and data: images only; never a host, a scheme wildcard or 'unsafe-*'.
            assert source in {"'self'", "'none'", "data:"}, (directive, source)
    assert page.headers["x-content-type-options"] == "nosniff"

    bodies = {}
    for url in parsed.urls:
        asset = await client.get(url)
        path = urlsplit(url).path
        assert asset.status_code == 200, url
        suffix = path[path.rindex(".") :]
        assert asset.headers["content-type"].startswith(MEDIA_TYPES[suffix]), url
        assert "max-age=31536000" in asset.headers["cache-control"], url
        assert asset.headers["x-content-type-options"] == "nosniff", url
        bodies[path.rsplit("/", 1)[1]] = asset.content
    # Swagger UI 5 (the first to render OpenAPI 3.1, which every document here is).
    assert b'PACKAGE_VERSION:"5.' in bodies["swagger-ui-bundle.js"]
    init = bodies["swagger-init.js"].decode()
    assert "persistAuthorization: false" in init
    assert "persistAuthorization: true" not in init

    document = await client.get(openapi_url)
    assert document.status_code == 200
    assert document.json()["openapi"].startswith("3.1")
