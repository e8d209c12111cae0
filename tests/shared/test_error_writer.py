"""One error hierarchy and one writer: every error body of every process is an ``AppError``
written by ``shared.errors.error_json``.

Structural checks of the code itself, so that a new refusal cannot frame the envelope again
or bring its own error class: the handlers, the request middleware, the HTTP server's
protocol, the gateway's ``Edge`` and the server-sent ``error`` events all go through it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

from shared.errors import AppError
from tests.support.code import ROOT, sources

PACKAGES = ("shared", "gateway", "auth_service", "todo_service", "chat_service")
WRITER = ROOT / "shared" / "errors.py"

# Exceptions of ours that never become an answer of their own, and why.
NOT_ANSWERS = {
    # The client left while sending its body: nothing is answered.
    "gateway.proxy._ClientGone",
    # A tool's refusal inside an MCP call: an ``isError`` tool result, not an HTTP error.
    "todo_service.mcp.ToolRefused",
    # The chat parser's own control flow: caught where it is raised.
    "chat_service.agents.dates._NotATime",
    # A stream entry outside the event envelope: logged and acknowledged by the worker.
    "shared.events.MalformedEvent",
    # A webhook URL the SSRF checks refuse: the API answers it as a WebhookUrlRefused (422),
    # the delivery loop records it on the delivery.
    "todo_service.webhooks.targets.TargetRefused",
}


def _modules() -> list[str]:
    return [
        info.name
        for package in PACKAGES
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}.")
        if ".migrations" not in info.name and not info.name.endswith("__main__")
    ]


def test_every_exception_of_ours_is_an_app_error_or_never_answered() -> None:
    strays = [
        f"{name}.{cls.__qualname__}"
        for name in _modules()
        for cls in vars(importlib.import_module(name)).values()
        if inspect.isclass(cls)
        and issubclass(cls, BaseException)
        and cls.__module__ == name
        and not issubclass(cls, AppError)
        and f"{name}.{cls.__qualname__}" not in NOT_ANSWERS
    ]
    assert strays == [], "error classes outside shared.errors.AppError's hierarchy"


def _framings(tree: ast.AST) -> list[tuple[int, str]]:
    """Where ``tree`` builds an error body itself: a mapping with a ``detail`` key, or text
    holding a JSON ``"detail"`` member, a raw JSON content type, or an SSE ``error`` event."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(
            isinstance(key, ast.Constant) and key.value == "detail" for key in node.keys
        ):
            found.append((node.lineno, "a dict with a 'detail' key"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "dict"
            and any(keyword.arg == "detail" for keyword in node.keywords)
        ):
            found.append((node.lineno, "dict(detail=...)"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if '"detail"' in text:
                found.append((node.lineno, 'text with a "detail" member'))
            elif isinstance(node.value, bytes) and b"application/json" in node.value:
                found.append((node.lineno, "a raw application/json answer"))
            elif "event: error" in text:
                found.append((node.lineno, "an SSE error event"))
    return found


def test_only_shared_errors_writes_an_error_body() -> None:
    framed = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in sources(PACKAGES, but={WRITER})
        for line, what in _framings(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert framed == [], "error bodies framed outside shared.errors.error_json"


def test_the_check_finds_a_hand_framed_body() -> None:
    """The check above is not blind: each way of framing the envelope by hand is found."""
    framed = """
payload = json.dumps({"detail": refusal.detail, "code": refusal.code}).encode()
body = dict(detail="Not found", code="not_found")
raw = b'{"detail": "Not found"}'
headers = [(b"content-type", b"application/json")]
event = f"event: error\\ndata: {payload}\\n\\n"
"""
    assert sorted(line for line, _ in _framings(ast.parse(framed))) == [2, 3, 4, 5, 6]
