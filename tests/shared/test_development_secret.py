"""``development_secret``: the one way a service keeps a generated development key under
``.data/`` (auth's signing key, the web client's session key)."""

from __future__ import annotations

import stat
from pathlib import Path

from shared.settings import development_secret


def test_a_secret_is_generated_once_and_kept_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    made: list[str] = []

    def generate() -> str:
        made.append(f"secret {len(made)}")
        return made[-1]

    first = development_secret(path, generate, what="test key")
    second = development_secret(path, generate, what="test key")

    assert first == second == "secret 0"
    assert made == ["secret 0"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_process_that_loses_the_race_to_create_it_uses_the_winners(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"

    def generate_while_another_process_writes_first() -> str:
        path.write_text("the winner's")
        return "the loser's"

    assert development_secret(path, generate_while_another_process_writes_first, what="k") == (
        "the winner's"
    )
    assert path.read_text() == "the winner's"
