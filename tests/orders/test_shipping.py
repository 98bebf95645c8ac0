"""Shipping and completion: staff with the shipping permission ship (carrier and
tracking number the shopper sees) and complete; the shopper confirms receipt;
the janitor completes what nobody confirmed ORDER_AUTO_COMPLETE_DAYS after shipping."""
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from config.periodic import PERIODIC_JOBS
from orders.exceptions import InvalidOrderTransition, ShippingDetailsMissing
from orders.models import Order, OrderEvent, OrderStatus
from orders.services import order_complete, order_ship, orders_complete_delivered
from shop.actors import Actor
from tests.concurrency import run_in_parallel
from tests.orders.factories import place_order
from tests.shop.factories import UserFactory

pytestmark = pytest.mark.django_db

STAFF = Actor.system("test")


def paid(**kwargs) -> Order:
    order = place_order(**kwargs)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAID, paid_at=timezone.now())
    return Order.objects.get(pk=order.pk)


def clerk(*codenames):
    user = UserFactory(username="clerk", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_order", *codenames]))
    return type(user).objects.get(pk=user.pk)


def ship_url(order) -> str:
    return reverse("admin:orders_order_ship", args=[order.pk])


def events(order) -> list[tuple[str, str, str]]:
    return list(OrderEvent.objects.filter(order=order).values_list("from_status", "to_status", "reason"))


class TestStaffShip:
    def test_staff_with_the_permission_ship_and_the_shopper_sees_the_tracking(self, client):
        order = paid()
        staff = clerk("ship_order")
        client.force_login(staff)
        page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
        assert 'data-testid="ship-form"' in page

        response = client.post(ship_url(order), {"carrier": "sf", "tracking_number": " SF1234567890 "}, follow=True)

        assert f"Order {order.order_no} is shipped with SF Express, tracking number SF1234567890." in (
            response.content.decode())
        order.refresh_from_db()
        assert (order.status, order.shipping_carrier, order.tracking_number) == ("shipped", "sf", "SF1234567890")
        assert order.shipped_at is not None
        shipped = OrderEvent.objects.get(order=order, to_status=OrderStatus.SHIPPED)
        assert (shipped.from_status, shipped.actor_kind, shipped.actor_user) == ("paid", "staff", staff)

        client.force_login(order.shopper)
        shopper_page = client.get(order.get_absolute_url()).content.decode()
        assert "Shipped by SF Express on" in shopper_page
        assert 'data-testid="tracking-number">SF1234567890<' in shopper_page
        assert 'data-testid="confirm-receipt"' in shopper_page

    def test_without_the_shipping_permission_it_is_forbidden_and_nothing_moves(self, client):
        order = paid()
        client.force_login(clerk())
        page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
        assert 'data-testid="ship-form"' not in page
        assert client.post(ship_url(order), {"carrier": "sf", "tracking_number": "SF1"}).status_code == 403
        assert client.post(reverse("admin:orders_order_complete", args=[order.pk])).status_code == 403
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
        assert ("paid", "shipped", "shipped") not in events(order)

    @pytest.mark.parametrize("data", [{"carrier": "sf", "tracking_number": "  "}, {"carrier": "dhl-ish",
                                                                                      "tracking_number": "X1"}, {}])
    def test_a_missing_carrier_or_tracking_number_is_refused_with_a_message(self, client, data):
        order = paid()
        client.force_login(clerk("ship_order"))
        response = client.post(ship_url(order), data, follow=True)
        assert "Choose the carrier and enter the tracking number." in response.content.decode()
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID

    def test_staff_mark_a_shipped_order_completed(self, client):
        order = order_ship(order_id=paid().pk, actor=STAFF, carrier="zto", tracking_number="ZT1")
        client.force_login(clerk("ship_order"))
        client.post(reverse("admin:orders_order_complete", args=[order.pk]))
        order.refresh_from_db()
        assert order.status == OrderStatus.COMPLETED and order.completed_at is not None
        assert events(order)[-1][:2] == ("shipped", "completed")

    def test_a_get_or_a_forged_id_moves_nothing(self, client):
        order = paid()
        client.force_login(clerk("ship_order"))
        assert client.get(ship_url(order)).status_code == 403
        assert client.post("/admin/orders/order/abc/ship/", {"carrier": "sf", "tracking_number": "1"}).status_code \
            == 404
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


class TestShipService:
    def test_an_order_with_a_refund_pending_or_unpaid_is_not_shipped(self):
        unpaid = place_order()
        with pytest.raises(InvalidOrderTransition):
            order_ship(order_id=unpaid.pk, actor=STAFF, carrier="sf", tracking_number="SF1")
        pending = paid()
        Order.objects.filter(pk=pending.pk).update(status=OrderStatus.REFUND_PENDING)
        with pytest.raises(InvalidOrderTransition):
            order_ship(order_id=pending.pk, actor=STAFF, carrier="sf", tracking_number="SF1")
        assert Order.objects.get(pk=pending.pk).status == OrderStatus.REFUND_PENDING

    def test_shipping_again_keeps_the_first_carrier_and_writes_no_event(self):
        order = order_ship(order_id=paid().pk, actor=STAFF, carrier="sf", tracking_number="SF1")
        count = OrderEvent.objects.filter(order=order).count()
        again = order_ship(order_id=order.pk, actor=STAFF, carrier="jd", tracking_number="JD2")
        assert (again.shipping_carrier, again.tracking_number) == ("sf", "SF1")
        assert OrderEvent.objects.filter(order=order).count() == count

    def test_shipping_details_are_checked_first(self):
        with pytest.raises(ShippingDetailsMissing):
            order_ship(order_id=paid().pk, actor=STAFF, carrier="", tracking_number="SF1")


class TestShopperConfirmsReceipt:
    def test_the_shopper_confirms_and_the_history_says_so(self, client):
        order = order_ship(order_id=paid().pk, actor=STAFF, carrier="sf", tracking_number="SF1")
        client.force_login(order.shopper)
        response = client.post(reverse("orders:confirm_receipt", args=[order.order_no]), follow=True)
        page = response.content.decode()
        assert "Thank you: the order is complete." in page
        assert "Receipt confirmed" in page and 'data-testid="confirm-receipt"' not in page
        order.refresh_from_db()
        assert order.status == OrderStatus.COMPLETED
        last = OrderEvent.objects.filter(order=order).last()
        assert (last.actor_kind, last.actor_user, last.reason) == ("shopper", order.shopper, "receipt confirmed")

    def test_only_the_shopper_and_only_by_post(self, client):
        order = order_ship(order_id=paid().pk, actor=STAFF, carrier="sf", tracking_number="SF1")
        client.force_login(UserFactory(username="mallory"))
        assert client.post(reverse("orders:confirm_receipt", args=[order.order_no])).status_code == 404
        client.force_login(order.shopper)
        assert client.get(reverse("orders:confirm_receipt", args=[order.order_no])).status_code == 405
        assert Order.objects.get(pk=order.pk).status == OrderStatus.SHIPPED

    def test_confirming_an_order_not_shipped_says_why(self, client):
        order = paid()
        client.force_login(order.shopper)
        response = client.post(reverse("orders:confirm_receipt", args=[order.order_no]), follow=True)
        assert "This cannot be done in the current state." in response.content.decode()
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


class TestAutoComplete:
    def test_a_shipped_order_completes_after_the_configured_days_and_not_before(self, settings):
        settings.ORDER_AUTO_COMPLETE_DAYS = 7
        shipped_at = timezone.now()
        with time_machine.travel(shipped_at, tick=False):
            order = order_ship(order_id=paid().pk, actor=STAFF, carrier="sf", tracking_number="SF1")
            still_paid = paid()
        with time_machine.travel(shipped_at + timedelta(days=7) - timedelta(minutes=1), tick=False):
            assert orders_complete_delivered() == 0
        assert Order.objects.get(pk=order.pk).status == OrderStatus.SHIPPED
        with time_machine.travel(shipped_at + timedelta(days=7, minutes=1), tick=False):
            assert orders_complete_delivered() == 1
            assert orders_complete_delivered() == 0  # a second run finds nothing
        order.refresh_from_db()
        assert order.status == OrderStatus.COMPLETED
        assert order.completed_at == shipped_at + timedelta(days=7, minutes=1)
        last = OrderEvent.objects.filter(order=order).last()
        assert (last.from_status, last.to_status, last.actor_kind, last.actor_label, last.reason) == (
            "shipped", "completed", "system", "janitor", "completed automatically")
        assert OrderEvent.objects.filter(order=order, to_status=OrderStatus.COMPLETED).count() == 1
        assert Order.objects.get(pk=still_paid.pk).status == OrderStatus.PAID

    def test_the_sweep_goes_in_batches_and_leaves_a_refund_pending_alone(self, settings):
        settings.ORDER_AUTO_COMPLETE_DAYS = 1
        long_ago = timezone.now() - timedelta(days=3)
        with time_machine.travel(long_ago, tick=False):
            shipped = [order_ship(order_id=paid().pk, actor=STAFF, carrier="sf", tracking_number=f"SF{i}")
                       for i in range(5)]
        Order.objects.filter(pk=shipped[0].pk).update(status=OrderStatus.REFUND_PENDING)
        assert orders_complete_delivered(batch=2) == 4
        statuses = dict(Order.objects.filter(pk__in=[o.pk for o in shipped]).values_list("pk", "status"))
        assert statuses.pop(shipped[0].pk) == OrderStatus.REFUND_PENDING
        assert set(statuses.values()) == {OrderStatus.COMPLETED}

    def test_the_shoppers_page_says_it_completed_by_itself(self, client, settings):
        settings.ORDER_AUTO_COMPLETE_DAYS = 1
        with time_machine.travel(timezone.now() - timedelta(days=2), tick=False):
            order = order_ship(order_id=paid().pk, actor=STAFF, carrier="ems", tracking_number="EA1")
        orders_complete_delivered()
        client.force_login(order.shopper)
        page = client.get(order.get_absolute_url()).content.decode()
        assert "Completed automatically" in page and "China Post EMS" in page

    def test_the_sweep_is_a_periodic_job(self):
        assert "orders.tasks.orders_complete_delivered_task" in {job.task for job in PERIODIC_JOBS}


@pytest.mark.django_db(transaction=True)
def test_the_sweep_and_the_shopper_confirming_at_once_complete_it_once(settings):
    settings.ORDER_AUTO_COMPLETE_DAYS = 1
    with time_machine.travel(timezone.now() - timedelta(days=2), tick=False):
        order = order_ship(order_id=paid().pk, actor=STAFF, carrier="sf", tracking_number="SF1")

    def race(i):
        if i % 2:
            return orders_complete_delivered()
        return order_complete(order_id=order.pk, actor=Actor.shopper(order.shopper), reason="receipt confirmed")

    results = run_in_parallel(race, 4)

    assert [kind for kind, _ in results] == ["ok"] * 4, results
    assert Order.objects.get(pk=order.pk).status == OrderStatus.COMPLETED
    assert OrderEvent.objects.filter(order=order, to_status=OrderStatus.COMPLETED).count() == 1
