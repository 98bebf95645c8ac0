"""Lifecycle.move (shop/lifecycle.py): one UPDATE by primary key, one event, the table obeyed."""
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.exceptions import InvalidOrderTransition
from orders.models import Order, OrderEvent, OrderStatus
from orders.services.lifecycle import ORDER_LIFECYCLE
from shop.actors import Actor
from tests.orders.factories import place_order

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")


def test_a_move_is_one_update_of_the_changed_columns_and_one_event():
    order = place_order()
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    order.refresh_from_db()
    before = order.updated_at
    paid_at = timezone.now()

    with CaptureQueriesContext(connection) as queries:
        moved = ORDER_LIFECYCLE.move(order, to_status=OrderStatus.PAID, actor=ACTOR, reason="paid",
                                     extra_fields={"paid_at": paid_at})

    assert moved
    updates = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("UPDATE")]
    assert len(queries.captured_queries) == 2 and len(updates) == 1
    assert 'WHERE "orders_order"."id" = ' in updates[0]
    assert '"status"' in updates[0] and '"updated_at"' in updates[0] and '"paid_at"' in updates[0]
    assert '"total_minor"' not in updates[0]  # only what the move changes
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.paid_at) == (OrderStatus.PAID, paid_at)
    assert stored.updated_at > before and stored.updated_at == order.updated_at
    event = OrderEvent.objects.get(order=order, to_status=OrderStatus.PAID)
    assert (event.from_status, event.reason) == (OrderStatus.PENDING_PAYMENT, "paid")


def test_asking_for_the_status_it_has_changes_nothing():
    order = place_order()

    with CaptureQueriesContext(connection) as queries:
        assert not ORDER_LIFECYCLE.move(order, to_status=OrderStatus.PENDING_PAYMENT, actor=ACTOR)

    assert not queries.captured_queries


def test_a_move_the_table_forbids_raises_and_writes_nothing():
    order = place_order()

    with pytest.raises(InvalidOrderTransition):
        ORDER_LIFECYCLE.move(order, to_status=OrderStatus.COMPLETED, actor=ACTOR)

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert not OrderEvent.objects.filter(order=order, to_status=OrderStatus.COMPLETED).exists()


def test_a_row_that_is_gone_is_an_error_as_with_save():
    order = place_order()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PENDING_PAYMENT)
    order.pk = order.pk + 10_000

    with pytest.raises(DatabaseError):
        ORDER_LIFECYCLE.move(order, to_status=OrderStatus.PAID, actor=ACTOR)
