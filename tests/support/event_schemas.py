"""The event types as docs/events.md documents them: each ``type``/``version`` heading's
JSON Schema and examples, read from the page itself, so a test validates real events against
exactly what integrators read."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

EVENTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
_HEADING = re.compile(r"^#{3,4} `(?P<type>[a-z_.]+)`, version (?P<version>\d+)\b", re.M)
_ANY_HEADING = re.compile(r"^#{1,4} ", re.M)
_JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.M | re.S)
# RFC 3339 date-time, as the envelope and the types spell it (an offset is required).
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the type keyword judges non-strings
    if not _DATE_TIME.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@dataclass(frozen=True)
class DocumentedType:
    type: str
    version: int
    schema: dict[str, Any]
    examples: tuple[Any, ...]

    def validator(self) -> Draft202012Validator:
        return Draft202012Validator(self.schema, format_checker=FORMATS)


@cache
def documented_types() -> dict[tuple[str, int], DocumentedType]:
    """Every ``type``, version N section of docs/events.md: its schema (the JSON block with
    ``$schema``) and its examples (the other JSON blocks)."""
    text = EVENTS_DOC.read_text()
    found: dict[tuple[str, int], DocumentedType] = {}
    for heading in _HEADING.finditer(text):
        following = _ANY_HEADING.search(text, heading.end())
        section = text[heading.end() : following.start() if following else len(text)]
        blocks = [json.loads(block) for block in _JSON_BLOCK.findall(section)]
        schemas = [block for block in blocks if isinstance(block, dict) and "$schema" in block]
        assert len(schemas) == 1, f"{heading.group(0)}: one JSON Schema, found {len(schemas)}"
        schema = schemas[0]
        Draft202012Validator.check_schema(schema)
        key = (heading.group("type"), int(heading.group("version")))
        assert schema.get("$id") == f"{key[0]}/{key[1]}", heading.group(0)
        found[key] = DocumentedType(
            key[0], key[1], schema, tuple(block for block in blocks if block is not schema)
        )
    return found


def validate_data(type: str, version: int, data: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``data`` is valid for the documented
    schema of ``type`` at ``version`` (a KeyError when it is undocumented)."""
    documented_types()[(type, version)].validator().validate(data)
