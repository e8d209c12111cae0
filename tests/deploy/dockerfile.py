"""Just enough of a Dockerfile reader to rebuild an image's contents without Docker.

The image tests read the Dockerfile itself (stages, ``--extra``, ``COPY``, ``ENV``, ``CMD``,
``HEALTHCHECK``), so what they check is what ``docker build`` would produce.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for word, argument in self.instructions if word == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, continuation lines joined and comments dropped."""
    result = []
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, argument = logical.partition(" ")
        result.append((keyword.upper(), argument.strip()))
        logical = ""
    return result


def stages(path: Path) -> dict[str, Stage]:
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, argument in instructions(path.read_text()):
        if keyword == "FROM":
            parts = re.split(r"\s+AS\s+", argument, flags=re.IGNORECASE)
            base = parts[0]
            name = parts[1] if len(parts) > 1 else base
            current = Stage(name=name, base=base)
            found[name] = current
        elif current is not None:
            current.instructions.append((keyword, argument))
    return found


def env_of(stage_chain: list[Stage]) -> dict[str, str]:
    """The ENV values of a stage and its ancestors (``KEY=value`` form, no substitution)."""
    values: dict[str, str] = {}
    for stage in stage_chain:
        for argument in stage.all("ENV"):
            for pair in shlex.split(argument):
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def chain(all_stages: dict[str, Stage], name: str) -> list[Stage]:
    """A stage's ancestors within the file, oldest first, itself last."""
    result = []
    stage: Stage | None = all_stages[name]
    while stage is not None:
        result.insert(0, stage)
        stage = all_stages.get(stage.base)
    return result


def exec_form(argument: str) -> list[str]:
    """The JSON array of a CMD or of a HEALTHCHECK's CMD."""
    command = argument.split("CMD", 1)[1] if argument.lstrip().startswith("--") else argument
    parsed: list[str] = json.loads(command.strip())
    return parsed
