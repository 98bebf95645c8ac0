"""SQLite for the sandbox's many request threads: writers queue in the process, not in SQLite's busy handler.

Every request runs in a thread of its own and the write transactions are
IMMEDIATE (settings.py). When tens of threads want the write lock at once
(`make bench` sends 60 payment starts at a time), SQLite's busy handler
makes each of them sleep and try again, with sleeps that grow to 100 ms:
CPU spent retrying, and answers late by a sleep. A lock in the process
hands the write lock on in order instead. A thread that waits longer than
the busy timeout goes on to SQLite's own wait, so a writer stuck on
something else (a transaction held over a network call) is no worse off
than before: it gets SQLite's "database is locked" after the timeout.
"""
from __future__ import annotations

import threading

from django.db.backends.sqlite3 import base

_WRITER = threading.Lock()


class DatabaseWrapper(base.DatabaseWrapper):
    holds_writer = False

    def _start_transaction_under_autocommit(self) -> None:
        self.holds_writer = _WRITER.acquire(timeout=float(self.settings_dict["OPTIONS"].get("timeout", 5)))
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # private, not in the stubs
        except BaseException:
            self._writer_release()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]
        finally:
            self._writer_release()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]
        finally:
            self._writer_release()

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]
        finally:
            self._writer_release()

    def _writer_release(self) -> None:
        if self.holds_writer:
            self.holds_writer = False
            _WRITER.release()
