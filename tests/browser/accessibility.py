"""What counts as an accessibility failure in the browser tests: axe-core's WCAG 2.0/2.1 A
and AA rules, and a violation of serious or critical impact."""

from __future__ import annotations

from typing import Any

BLOCKING = {"serious", "critical"}
AXE_OPTIONS = {
    "resultTypes": ["violations"],
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
}


def blocking(violations: list[dict[str, Any]]) -> list[str]:
    """The serious and critical ones among axe's ``violations``, one line each."""
    return [
        f"{v['impact']} {v['id']}: {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:5])
        for v in violations
        if v["impact"] in BLOCKING
    ]
