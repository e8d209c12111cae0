"""The log formatters hide PostgreSQL's DETAIL wherever a traceback shows the error."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import pytest
from asyncpg.exceptions import CheckViolationError

from shared.log import HIDDEN_DETAIL, DevFormatter, JsonFormatter

SECRET = "Failing row contains (ann@example.com, $argon2id$...)"


def failed_row() -> CheckViolationError:
    error = CheckViolationError("new row violates check constraint")
    error.detail = SECRET
    return error


def record_of(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        return logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())


def in_a_group() -> BaseException:
    return ExceptionGroup("a task group's errors", [ValueError("other"), failed_row()])


def as_a_cause() -> BaseException:
    try:
        raise failed_row()
    except CheckViolationError as exc:
        try:
            raise RuntimeError("the request failed") from exc
        except RuntimeError as outer:
            return outer


@pytest.mark.parametrize("made", [failed_row, as_a_cause, in_a_group])
@pytest.mark.parametrize("formatter", [JsonFormatter("todo"), DevFormatter("todo")])
def test_a_database_errors_detail_is_hidden_wherever_the_traceback_shows_it(
    made: Callable[[], BaseException], formatter: logging.Formatter
) -> None:
    written = formatter.format(record_of(made()))

    assert "ann@example.com" not in written
    assert HIDDEN_DETAIL in written
    assert "new row violates check constraint" in written
