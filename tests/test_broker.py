"""The shop's Redis broker transport (config/broker.py) against the local Redis."""
import uuid

import pytest
import redis
from kombu import Connection

from config.broker import RedisTransport

BROKER_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def channel():
    queue = f"test-broker-{uuid.uuid4().hex}"
    connection = Connection(BROKER_URL, transport=RedisTransport)
    channel = connection.channel()
    channel.queue = queue
    yield channel
    redis.Redis.from_url(BROKER_URL).delete(queue)
    connection.release()


def _publish_and_read(channel, body: str) -> bytes | None:
    channel._put(channel.queue, {"body": body, "properties": {"delivery_info": {}}})
    return redis.Redis.from_url(BROKER_URL).rpop(channel.queue)


def test_publishes_share_one_client_on_the_channels_pool(channel):
    """No client is built per publish: every command outside the poll goes through one."""
    with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
        assert first is second
        assert first.connection_pool is channel.pool

    assert b"one" in _publish_and_read(channel, "one")
    with channel.conn_or_acquire() as after:
        assert after is first


def test_a_client_passed_in_is_used_as_it_is(channel):
    own = redis.Redis.from_url(BROKER_URL)
    with channel.conn_or_acquire(own) as client:
        assert client is own


def test_a_dropped_connection_is_reopened_by_the_next_publish(channel):
    """Redis closed the channel's connections (a restart, CLIENT KILL): the shared client reconnects."""
    assert b"before" in _publish_and_read(channel, "before")
    with channel.conn_or_acquire() as client:
        # Only this channel's own connection: the Redis is shared.
        redis.Redis.from_url(BROKER_URL).client_kill_filter(_id=client.client_id())

    assert b"after" in _publish_and_read(channel, "after")


def test_a_replaced_pool_gets_a_new_client(channel):
    """After the pools are dropped (a fork, a close) the client of the old pool is not reused."""
    with channel.conn_or_acquire() as before:
        pass
    channel._disconnect_pools()

    with channel.conn_or_acquire() as after:
        assert after is not before
        assert after.connection_pool is channel.pool
