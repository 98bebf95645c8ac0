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
"""
from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was already collected")
        # kombu-stubs leave out this private method.
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class RedisTransport(kombu_redis.Transport):
    Channel = Channel
