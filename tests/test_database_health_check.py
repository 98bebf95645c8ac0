"""The health check before a persistent connection is reused (config/database/base.py)."""
import pytest
from django.db import close_old_connections, connection, connections

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("database_health_check")]


@pytest.fixture
def persistent_connection():
    """The default connection as production keeps it: reused by the next request, checked first."""
    settings = connection.settings_dict
    saved = settings["CONN_MAX_AGE"], settings["CONN_HEALTH_CHECKS"]
    settings["CONN_MAX_AGE"], settings["CONN_HEALTH_CHECKS"] = 60, True
    connection.close()
    connection.ensure_connection()
    yield connection
    settings["CONN_MAX_AGE"], settings["CONN_HEALTH_CHECKS"] = saved
    connection.close()


def _next_request() -> None:
    # What Django does between requests (request_finished, request_started).
    close_old_connections()
    close_old_connections()


def _last_statement(pid: int) -> str:
    observer = connections.create_connection("default")
    try:
        with observer.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
            row = cursor.fetchone()
    finally:
        observer.close()
    return row[0] if row else ""


def _terminate(pid: int) -> None:
    observer = connections.create_connection("default")
    try:
        with observer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
            assert cursor.fetchone() == (True,)
    finally:
        observer.close()


def test_the_engine_is_the_shops_backend():
    """Tests and production run on the backend whose health check is tested here."""
    assert connection.settings_dict["ENGINE"] == "config.database"
    assert type(connections["default"]).__module__ == "config.database.base"


def test_a_healthy_connection_is_reused_without_a_query(persistent_connection):
    """The check reads the idle socket: no SELECT 1 reaches the server."""
    with persistent_connection.cursor() as cursor:
        cursor.execute("SELECT 'the last statement before the check'")
    pid = persistent_connection.connection.info.backend_pid
    raw = persistent_connection.connection

    _next_request()
    persistent_connection.close_if_health_check_failed()

    assert persistent_connection.health_check_done
    assert persistent_connection.connection is raw
    assert _last_statement(pid) == "SELECT 'the last statement before the check'"
    with persistent_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone() == (pid,)


def test_a_connection_killed_by_the_server_is_replaced_on_the_next_request(persistent_connection):
    """pg_terminate_backend from another connection: the next request gets a new one, not an error."""
    pid = persistent_connection.connection.info.backend_pid
    _terminate(pid)

    assert not persistent_connection.is_usable()
    _next_request()
    with persistent_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (new_pid,) = cursor.fetchone()

    assert new_pid != pid


def test_a_connection_inside_a_transaction_falls_back_to_a_query(persistent_connection):
    """Not idle (a transaction left open): Django's own SELECT 1 decides."""
    persistent_connection.connection.execute("BEGIN")
    pid = persistent_connection.connection.info.backend_pid

    assert persistent_connection.is_usable()
    assert _last_statement(pid) == "SELECT 1"
    persistent_connection.connection.execute("ROLLBACK")


def test_a_closed_connection_is_not_usable(persistent_connection):
    persistent_connection.connection.close()

    assert not persistent_connection.is_usable()
