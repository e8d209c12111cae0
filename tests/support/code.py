"""The platform's own source, for the tests that read the code itself (one way to write an
error body, one way to answer with an event stream)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = (
    "shared",
    "gateway",
    "auth_service",
    "todo_service",
    "chat_service",
    "web_service",
)


def sources(
    packages: Collection[str] = SERVICE_PACKAGES, *, but: Collection[Path] = ()
) -> list[Path]:
    """The Python files of ``packages``, their frozen migrations left out, and ``but``."""
    return [
        path
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts and path not in but
    ]
