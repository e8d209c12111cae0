"""How ``pytest -n 2 --dist loadfile`` (``make test``) hands test files to its workers.

As with plain ``loadfile``, every file runs whole on one worker, so the fixtures a file shares
start once. Two things are added:

- The files of ``tests/e2e`` and of ``tests/security`` each go to one worker as one unit, one
  after the other: each package shares one running stack (a package-scoped fixture), which
  ``loadfile`` would start again whenever another package's file came between two of its files.
- The longest units go first, the rest by number of tests as ``loadfile`` orders them, so the
  last files to run are short ones and both workers finish at about the same time.

The order only changes how long the run takes, never what a test sees.
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController

# Packages whose files share one package-scoped stack.
WHOLE_PACKAGES = ("tests/e2e/", "tests/security/")

# The units that take longest (a stack each, or many seconds per test), longest first.
FIRST = (
    "tests/e2e/",
    "tests/security/",
    "tests/chat/test_corpus.py",
    "tests/events/test_todo_outbox_crash.py",
    "tests/auth/test_session_races.py",
    "tests/events/test_outbox_crash.py",
)


class PackageLoadFileScheduling(LoadFileScheduling):  # type: ignore[misc]
    """``loadfile`` with whole packages for ``WHOLE_PACKAGES`` and the ``FIRST`` units first."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return next((package for package in WHOLE_PACKAGES if path.startswith(package)), path)

    def _assign_work_unit(self, node: WorkerController) -> None:
        first = next((unit for unit in FIRST if unit in self.workqueue), None)
        if first is not None:
            self.workqueue.move_to_end(first, last=False)
        super()._assign_work_unit(node)
