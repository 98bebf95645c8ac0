"""The shopper's refund emails: in their language, saying what happened at each event,
"approved" always before "refunded"."""
import pytest
from django.core import mail

from orders.models import Order
from refunds.services import refund_approve, refund_email_shopper, refund_reject
from refunds.services.emails import RefundEmail
from tests.refunds.factories import apply_for_refund, paid_order, reviewer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def gateway(fake_gateway):
    return fake_gateway


def refund_mails():
    return [message for message in mail.outbox if "refund" in message.subject.lower() or "退款" in message.subject]


def test_approved_then_refunded_with_the_right_words(settings):
    settings.SITE_URL = "https://shop.example.com"
    order, _ = paid_order(price_minor=21050)
    refund = apply_for_refund(order, 21050)
    refund_approve(refund_id=refund.pk, reviewer=reviewer())

    approved, refunded = refund_mails()
    no = order.order_no
    assert approved.subject == f"Your refund of ¥210.50 for order {no} is approved"
    assert "Customer service approved your refund of ¥210.50" in approved.body
    assert "Fake Pay" in approved.body and "we will email you again once it is refunded" in approved.body
    assert refunded.subject == f"¥210.50 has been refunded for order {no}"
    assert "¥210.50 was refunded on" in refunded.body and "a bank card by" in refunded.body
    for message in (approved, refunded):
        assert f"https://shop.example.com/orders/{no}/" in message.body
        assert refund.out_refund_no in message.body


def test_a_result_sent_before_the_approval_sends_the_approval_first():
    """Two workers: the refund's 'succeeded' task runs before its 'approved' one."""
    order, _ = paid_order()
    refund = apply_for_refund(order, 1000)
    refund_approve(refund_id=refund.pk, reviewer=reviewer())
    RefundEmail.objects.filter(refund=refund).delete()
    mail.outbox.clear()

    assert refund_email_shopper(refund_id=refund.pk, event="succeeded") is True
    assert refund_email_shopper(refund_id=refund.pk, event="approved") is False  # already sent, in order

    assert [message.subject.split(" ")[0:3] for message in refund_mails()] == [
        ["Your", "refund", "of"], ["¥10.00", "has", "been"]]


def test_a_rejection_gives_the_reason_in_the_shoppers_language():
    order, _ = paid_order()
    Order.objects.filter(pk=order.pk).update(language="zh-hans")
    refund = apply_for_refund(order, 1000)
    refund_reject(refund_id=refund.pk, reviewer=reviewer(), note="超过退货期限")
    (message,) = refund_mails()
    assert message.subject == f"您的订单 {order.order_no} 的退款未获批准"
    assert "客服未批准您为订单" in message.body and "原因: 超过退货期限" in message.body


def test_the_payment_confirmation_speaks_the_order_language():
    mail.outbox.clear()
    order, _ = paid_order()
    (message,) = mail.outbox
    assert message.subject == f"Payment received for order {order.order_no}"
    assert "through Fake Pay" in message.body
