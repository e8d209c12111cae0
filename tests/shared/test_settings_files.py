"""Secret settings read from files: ``X_FILE`` stands for ``X`` (compose, Kubernetes)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from chat_service.settings import ChatSettings
from gateway.settings import GatewaySettings
from shared.bootstrap import passwords_from_environment
from shared.settings import secret_from_environment
from todo_service.settings import TodoSettings

URL = "postgresql://todo_app:s3cret@postgres:5432/todo"
# A URL whose password is random (no six characters of it appear in any message by chance).
SECRET_URL = f"postgresql://todo_app:{secrets.token_hex(16)}@postgres:5432/todo"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "TODO_DATABASE_URL", "MIGRATION_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)


def secret_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_secret_setting_is_read_from_the_file_its_file_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TODO_DATABASE_URL_FILE", secret_file(tmp_path, "url", URL + "\n"))
    assert TodoSettings(_env_file=None).database_url == URL


def test_a_variable_and_its_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TODO_DATABASE_URL_FILE", secret_file(tmp_path, "url", URL))
    monkeypatch.setenv("TODO_DATABASE_URL", "postgresql://other@postgres/todo")
    with pytest.raises(ValidationError, match="both TODO_DATABASE_URL and TODO_DATABASE_URL_FILE"):
        TodoSettings(_env_file=None)


def test_the_platform_wide_file_is_a_fallback_and_the_services_own_variable_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL_FILE", secret_file(tmp_path, "shared", URL))
    assert TodoSettings(_env_file=None).database_url == URL
    own = "postgresql://todo_app:other@postgres:5432/todo"
    monkeypatch.setenv("TODO_DATABASE_URL_FILE", secret_file(tmp_path, "own", own))
    assert TodoSettings(_env_file=None).database_url == own
    monkeypatch.setenv("DATABASE_URL", URL)
    with pytest.raises(ValueError, match="both DATABASE_URL and DATABASE_URL_FILE"):
        secret_from_environment("DATABASE_URL")


def test_an_unreadable_file_is_an_error_that_names_the_variable_not_a_silent_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TODO_DATABASE_URL_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="TODO_DATABASE_URL_FILE: cannot read"):
        TodoSettings(_env_file=None)


def test_an_empty_file_leaves_the_setting_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_OPENAI_API_KEY_FILE", secret_file(tmp_path, "key", ""))
    assert ChatSettings(_env_file=None).openai_api_key is None


def test_each_services_own_secrets_are_read_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_OPENAI_API_KEY_FILE", secret_file(tmp_path, "key", "sk-test\n"))
    key = ChatSettings(_env_file=None).openai_api_key
    assert key is not None
    assert key.get_secret_value() == "sk-test"
    redis = "redis://:pw@redis:6379/0"
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_STORAGE_URI_FILE", secret_file(tmp_path, "r", redis))
    assert GatewaySettings(_env_file=None).rate_limit_storage_uri == redis


def test_a_setting_that_is_no_secret_has_no_file_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TODO_LOG_LEVEL_FILE", secret_file(tmp_path, "level", "DEBUG"))
    assert TodoSettings(_env_file=None).log_level == "INFO"


def test_the_bootstrap_reads_role_passwords_from_files(tmp_path: Path) -> None:
    environ = {
        "TODO_APP_DB_PASSWORD_FILE": secret_file(tmp_path, "todo", "from-file\n"),
        "AUTH_APP_DB_PASSWORD": "from-variable",
    }
    assert passwords_from_environment(environ) == {
        "auth_app": "from-variable",
        "todo_app": "from-file",
    }
    environ["TODO_APP_DB_PASSWORD"] = "both"
    with pytest.raises(ValueError, match="both TODO_APP_DB_PASSWORD and"):
        passwords_from_environment(environ)


def test_a_refused_trusted_issuer_never_shows_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failed check of the settings is a startup error that goes to the process's log: it
    # must say what is wrong, not print the values (pydantic shows the input it refused,
    # which for a model-wide check is every setting, secret files' contents included).
    hs256 = secrets.token_hex(15)  # too short
    monkeypatch.setenv(
        "EXTRA_TRUSTED_ISSUERS",
        f'[{{"issuer": "x", "audience": "y", "hs256_secret": "{hs256}"}}]',
    )
    with pytest.raises(ValidationError) as refused:
        TodoSettings(_env_file=None)
    assert "at least 32 characters" in str(refused.value)
    assert not shows_part_of(hs256, str(refused.value))


def test_a_settings_check_that_fails_never_shows_the_secret_files_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A check of the whole model shows every setting; the secret files' contents come last.
    keys = secrets.token_hex(20)
    monkeypatch.setenv("TODO_ENVIRONMENT", "production")
    monkeypatch.setenv("TODO_WEBHOOKS_ALLOW_LOOPBACK", "true")
    monkeypatch.setenv("TODO_DATABASE_URL_FILE", secret_file(tmp_path, "url", SECRET_URL))
    monkeypatch.setenv("TODO_WEBHOOK_KEYS_FILE", secret_file(tmp_path, "keys", keys))
    with pytest.raises(ValidationError) as refused:
        TodoSettings(_env_file=None)
    assert "for development only" in str(refused.value)
    assert not shows_part_of(SECRET_URL.split(":")[2].split("@")[0], str(refused.value))
    assert not shows_part_of(keys, str(refused.value))


def shows_part_of(secret: str, text: str) -> bool:
    """Whether ``text`` holds any six characters of ``secret`` in a row (pydantic shortens a
    long value to its two ends)."""
    return any(secret[start : start + 6] in text for start in range(len(secret) - 5))
