"""The sandbox's SQLite backend: one writer at a time, queued in the process, the turn always handed back.

What a leak would cost is every later writer waiting out the busy timeout;
these tests look at the lock itself instead of timing anybody.
"""
import threading

import pytest
from django.db.utils import ConnectionHandler

from sandbox.sqlite import base


@pytest.fixture
def wrapper(tmp_path, django_db_blocker):
    # A SQLite file of the test's own, outside the shop's test database.
    django_db_blocker.unblock()
    handler = ConnectionHandler({"default": {
        "ENGINE": "sandbox.sqlite", "NAME": str(tmp_path / "sandbox.sqlite3"),
        "OPTIONS": {"timeout": 5, "transaction_mode": "IMMEDIATE"},
    }})
    connection = handler["default"]
    yield connection
    connection.close()
    django_db_blocker.restore()
    assert not base._WRITER.locked()


def begin(connection) -> None:
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_a_write_transaction_holds_the_turn_until_it_ends(wrapper, end):
    begin(wrapper)
    assert base._WRITER.locked() and wrapper.holds_writer

    getattr(wrapper, end)()

    assert not base._WRITER.locked() and not wrapper.holds_writer


def test_a_second_writer_waits_for_the_first_and_then_writes(wrapper):
    with wrapper.cursor() as cursor:
        cursor.execute("CREATE TABLE t (n integer)")
    begin(wrapper)
    with wrapper.cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (1)")
    waiting, wrote = threading.Event(), threading.Event()

    def second_writer() -> None:
        other = ConnectionHandler({"default": dict(wrapper.settings_dict)})["default"]
        waiting.set()
        begin(other)
        with other.cursor() as cursor:
            cursor.execute("INSERT INTO t VALUES (2)")
        other.commit()
        other.close()
        wrote.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    waiting.wait()
    assert not wrote.is_set()
    wrapper.commit()
    thread.join()

    assert wrote.is_set()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT n FROM t ORDER BY n")
        assert cursor.fetchall() == [(1,), (2,)]
    assert not base._WRITER.locked()
