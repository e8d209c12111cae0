"""The harness's own check (``Stack.errors``, ``Stack.assert_no_errors``): every record a
service logged at ERROR or CRITICAL is found with its traceback, and nothing else is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.stack import Stack

TODO_LOG = """
----- starting todo on port 45167 -----
22:09:22 INFO  access: GET /%20ERROR%20 404 1.0ms [rid=1]
22:09:22 WARNING shared.middleware: database unavailable: the ERROR of a server [rid=2]
22:09:22 ERROR shared.middleware: unhandled error on POST /api/tasks [rid=3]
Traceback (most recent call last):
  File "todo_service/api.py", line 224, in create_task
RuntimeError: a bug
22:09:22 INFO  access: POST /api/tasks 500 11.3ms [rid=3]
22:09:23 CRITICAL shared.app: cannot go on
Traceback (most recent call last):
SystemExit: 1

----- starting todo on port 45167 -----
22:09:24 INFO  uvicorn.error: Started server process [6376]
"""


def test_errors_are_the_severe_records_with_their_tracebacks_and_fail_the_check(
    tmp_path: Path,
) -> None:
    stack = Stack("postgresql://unused@/unused", tmp_path)
    (tmp_path / "todo.log").write_text(TODO_LOG)
    (tmp_path / "auth.log").write_text("22:09:22 WARNING shared.middleware: database unavailable\n")

    assert stack.errors() == (
        "todo: 22:09:22 ERROR shared.middleware: unhandled error on POST /api/tasks [rid=3]\n"
        "Traceback (most recent call last):\n"
        '  File "todo_service/api.py", line 224, in create_task\n'
        "RuntimeError: a bug\n"
        "todo: 22:09:23 CRITICAL shared.app: cannot go on\n"
        "Traceback (most recent call last):\n"
        "SystemExit: 1"
    )
    with pytest.raises(AssertionError, match="RuntimeError: a bug"):
        stack.assert_no_errors()


def test_logs_without_a_severe_record_pass_the_check(tmp_path: Path) -> None:
    stack = Stack("postgresql://unused@/unused", tmp_path)
    severe = ("22:09:22 ERROR ", "22:09:23 CRITICAL ")
    (tmp_path / "todo.log").write_text(
        TODO_LOG.replace(severe[0], "22:09:22 WARNING ").replace(severe[1], "22:09:23 INFO  ")
    )

    assert stack.errors() == ""
    stack.assert_no_errors()
