"""Reading server-sent events in tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any


async def next_event(lines: AsyncIterator[str]) -> tuple[str, Any]:
    """One server-sent event off the stream's lines: its name and its JSON data (bounded by
    the stream's own end)."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if fields:
                return fields["event"], json.loads(fields["data"])
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    raise AssertionError(f"the stream ended before a complete event: {fields}")
