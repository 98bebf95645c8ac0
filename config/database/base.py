"""Django's PostgreSQL backend with a health check that costs no round trip.

CONN_HEALTH_CHECKS asks `is_usable()` before the first query of every
request on a persistent connection; Django answers with a `SELECT 1`, one
round trip and a statement per request (a notification is ten statements
in all). An idle connection in good health has nothing for us to read:
libpq read everything up to the server's last ReadyForQuery. A connection
the server closed (restarted, `pg_terminate_backend`, idle timeout) has:
the server's FATAL message and then the end of the stream. So the check
here is libpq's status, the transaction status and a poll of the socket
with timeout 0. Whenever that is not the plain idle case (something to
read, which may also be a notice or a NOTIFY, or a transaction left open,
or no poll on this platform), Django's own `SELECT 1` decides.

What no check without a round trip can see is a peer gone without a word
(a network partition, a host powered off): Django's `SELECT 1` would wait
on TCP's timeouts there too, and the request's first query fails instead.
"""
from __future__ import annotations

import select

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        poll = getattr(select, "poll", None)
        try:
            pgconn = connection.pgconn
            idle = (pgconn.status == pq.ConnStatus.OK
                    and pgconn.transaction_status == pq.TransactionStatus.IDLE)
            socket = pgconn.socket
        except psycopg.Error:
            return False
        if not idle or poll is None:
            return bool(super().is_usable())
        poller = poll()
        poller.register(socket, select.POLLIN | select.POLLPRI)
        if poller.poll(0):
            # Readable: closed by the server (its FATAL message, then EOF),
            # or a notice; let a query tell them apart.
            return bool(super().is_usable())
        return True
