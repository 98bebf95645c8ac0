"""The Redis broker transport the shop's Celery uses (CELERY_BROKER_TRANSPORT).

kombu's own Redis transport, with one repair. Celery 5.7's worker, when its
broker connection drops, first `collect()`s the connection (which detaches
the transport from it) and then closes it; closing the consumer's channel
gives its unacknowledged messages back to Redis (`restore_unacked`), which
needs a client, whose parameters are read from the detached transport:
`AttributeError: 'NoneType' object has no attribute 'hostname'`, which is no
connection error, so the worker stops with "Unrecoverable error" and stays
down (reproduced by tests/e2e/test_broker_outage.py). Here a detached
channel answers with the connection error it is: kombu ignores it while
closing, and the worker reconnects. The messages it could not give back
stay in Redis's unacked set and come back after the visibility timeout, or,
when Redis lost them in a restart, the outbox delivers them again
(shop/outbox.py). No released celery/kombu has the fix; 5.6 would also need
redis-py below 6.5.

And one saving: kombu builds a new `redis.Redis` client for every command
it sends outside the consumer's poll (`conn_or_acquire`), each publish
included: no new connection (they come from the channel's pool), but a
client's construction (its table of response callbacks) was a fifth of a
publish's CPU. A channel here keeps one client on its pool and builds
another only when the pool was replaced (`_disconnect_pools` after a fork
or on close), so a broker restart is ridden out as before: the pool drops
the dead connection and the next command opens a new one.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _sync_client: redis.Redis | None = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        cached = self._sync_client
        if cached is None or cached.connection_pool is not pool:
            cached = self._sync_client = self._create_client()  # type: ignore[attr-defined]  # not in kombu-stubs
        yield cached

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was already collected")
        # kombu-stubs leave out this private method.
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class RedisTransport(kombu_redis.Transport):
    Channel = Channel
