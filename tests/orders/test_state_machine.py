import pytest

from orders.exceptions import InvalidOrderTransition
from orders.models import ORDER_TRANSITIONS, Order, OrderEvent, OrderStatus
from orders.services import order_close, order_mark_paid, order_transition
from shop.actors import Actor
from shop.models import Sku
from tests.orders.factories import place_order

SYSTEM = Actor.system("test")
LEGAL = [(src, dst) for src, targets in ORDER_TRANSITIONS.items() for dst in sorted(targets)]
ILLEGAL = [
    (src, dst)
    for src in OrderStatus.values
    for dst in OrderStatus.values
    if dst != src and dst not in ORDER_TRANSITIONS[src]
]


def order_in(status: str) -> Order:
    order = place_order()
    # Put the row straight into the starting status: the test is about the
    # one transition out of it.
    Order.objects.filter(pk=order.pk).update(status=status)
    return Order.objects.get(pk=order.pk)


def test_every_status_has_a_row_in_the_table():
    assert set(ORDER_TRANSITIONS) == set(OrderStatus.values)
    assert ORDER_TRANSITIONS[OrderStatus.CLOSED] == frozenset()
    assert ORDER_TRANSITIONS[OrderStatus.REFUNDED] == frozenset()


@pytest.mark.django_db
@pytest.mark.parametrize("src,dst", LEGAL)
def test_legal_transition_moves_and_writes_one_event(src, dst):
    order = order_in(src)
    events_before = OrderEvent.objects.filter(order=order).count()

    moved = order_transition(order_id=order.pk, to_status=dst, actor=SYSTEM, reason="test")

    assert moved.status == dst
    assert Order.objects.get(pk=order.pk).status == dst
    events = OrderEvent.objects.filter(order=order)
    assert events.count() == events_before + 1
    last = events.last()
    assert (last.from_status, last.to_status, last.actor_kind, last.actor_label) == (src, dst, "system", "test")


@pytest.mark.django_db
@pytest.mark.parametrize("src,dst", LEGAL)
def test_repeating_a_transition_is_a_no_op(src, dst):
    order = order_in(src)
    order_transition(order_id=order.pk, to_status=dst, actor=SYSTEM)
    events = OrderEvent.objects.filter(order=order).count()

    again = order_transition(order_id=order.pk, to_status=dst, actor=SYSTEM)

    assert again.status == dst
    assert OrderEvent.objects.filter(order=order).count() == events


@pytest.mark.django_db
@pytest.mark.parametrize("src,dst", ILLEGAL)
def test_illegal_transition_raises_and_changes_nothing(src, dst):
    order = order_in(src)
    events = OrderEvent.objects.filter(order=order).count()

    with pytest.raises(InvalidOrderTransition):
        order_transition(order_id=order.pk, to_status=dst, actor=SYSTEM)

    assert Order.objects.get(pk=order.pk).status == src
    assert OrderEvent.objects.filter(order=order).count() == events


@pytest.mark.django_db
def test_mark_paid_records_the_payment_time_once():
    order = place_order()
    paid = order_mark_paid(order_id=order.pk, actor=Actor.gateway("alipay"), reference="payment:1")
    first_paid_at = paid.paid_at
    assert first_paid_at is not None
    again = order_mark_paid(order_id=order.pk, actor=Actor.gateway("alipay"))
    assert again.paid_at == first_paid_at
    assert OrderEvent.objects.filter(order=order, to_status="paid").get().reference == "payment:1"


@pytest.mark.django_db
def test_closing_releases_stock_exactly_once():
    order = place_order(quantity=3, stock=10)
    sku = Sku.objects.get(code=order.lines.get().sku_code)
    assert sku.stock == 7

    order_close(order_id=order.pk, actor=SYSTEM, reason="timeout")
    order_close(order_id=order.pk, actor=SYSTEM, reason="timeout")

    assert Sku.objects.get(pk=sku.pk).stock == 10
    closed = Order.objects.get(pk=order.pk)
    assert closed.status == OrderStatus.CLOSED and closed.closed_at is not None


@pytest.mark.django_db
def test_a_paid_order_cannot_be_closed_and_keeps_its_stock():
    order = place_order(quantity=2, stock=5)
    order_mark_paid(order_id=order.pk, actor=SYSTEM)
    with pytest.raises(InvalidOrderTransition):
        order_close(order_id=order.pk, actor=SYSTEM, reason="timeout")
    assert Sku.objects.get(code=order.lines.get().sku_code).stock == 3
