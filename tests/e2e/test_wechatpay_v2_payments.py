"""WeChat Pay API v2 end to end: the live shop and the sandbox process, XML signed with the
API key both ways over real HTTP and HTTPS (the sandbox's own CA, verified).

The shop's WeChat Pay gateway is switched to v2 as WECHATPAY_API_VERSION=v2
would (tests/conftest.py `shop_sandbox_v2`); the cashier, the URLs and the
services are the ones v3 uses.
"""
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone

from orders.models import Order, OrderEvent, OrderStatus
from orders.services import orders_close_expired
from payments.gateways import get_gateway
from payments.gateways.base import PayMethod
from payments.gateways.wechatpay_v2 import WechatPayV2Gateway
from payments.models import GatewayNotification, NotificationOutcome, Payment, PaymentEvent, PaymentStatus
from payments.services import payments_query_stale
from shop.models import Sku
from tests.conftest import sandbox_wechatpay_v2_options
from tests.polling import wait_for
from tests.sandbox.wechatpay_v2_client import EXACT_ACK, fields_of, sign, xml_of

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NOTIFY_PATH = "/payments/wechatpay/notify/"
REFUND_NOTIFY_PATH = "/refunds/wechatpay/notify/"


@pytest.fixture
def sandbox(shop_sandbox_v2):
    return shop_sandbox_v2


def paid_events(order: Order) -> int:
    return OrderEvent.objects.filter(order=order, to_status=OrderStatus.PAID).count()


def succeeded_transitions(payment: Payment) -> int:
    return PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED).exclude(
        from_status=PaymentStatus.SUCCEEDED).count()


def processed(payment: Payment, count: int = 1) -> bool:
    done = GatewayNotification.objects.filter(out_trade_no=payment.out_trade_no).exclude(
        outcome=NotificationOutcome.RECEIVED)
    return done.count() >= count


def sandbox_trade(sandbox, payment: Payment) -> dict:
    return sandbox.control("GET", f"wechatpay/trades/{payment.out_trade_no}")


def deliveries(sandbox, payment: Payment, count: int) -> list[dict]:
    def logged():
        found = sandbox.control("GET", f"notifications?out_trade_no={payment.out_trade_no}&kind=payment")[
            "notifications"]
        sent = [delivery for notification in found for delivery in notification["deliveries"]]
        return sent if len(sent) >= count else None

    return sandbox.wait_for(logged, what=f"{count} deliveries")


def is_fail_xml(response: requests.Response) -> bool:
    try:
        answer = fields_of(response.content)
    except Exception:
        return False
    return answer.get("return_code") == "FAIL" and bool(answer.get("return_msg"))


def test_the_shop_speaks_v2_to_the_sandbox(sandbox):
    assert isinstance(get_gateway("wechatpay"), WechatPayV2Gateway)


def test_native_qr_payment_from_checkout_to_success_page(shop, sandbox):
    order = shop.place_order({"CUP-WHITE": 3})

    qr_page = shop.choose(order, "wechatpay:qr")

    payment = Payment.objects.get(order=order)
    assert (payment.gateway, payment.method, payment.status) == ("wechatpay", PayMethod.QR, PaymentStatus.PENDING)
    code_url = shop.qr_content(qr_page)
    assert code_url.startswith(sandbox.url("/wechatpay/scan/"))  # the shopper's page: plain HTTP
    trade = sandbox_trade(sandbox, payment)
    assert (trade["trade_type"], trade["amount_minor"]) == ("NATIVE", 11970)

    scan_page = shop.sandbox.open(code_url)
    assert "119.70" in scan_page.html
    shop.sandbox.press(scan_page, "sandbox-pay")

    # The signed XML notification is what pays the order.
    wait_for(lambda: processed(payment), what="the notification")
    notification = GatewayNotification.objects.get(out_trade_no=payment.out_trade_no)
    assert (notification.verified, notification.outcome) == (True, NotificationOutcome.APPLIED), \
        notification.outcome_detail
    assert bytes(notification.body).startswith(b"<xml>")
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.gateway_trade_no == sandbox_trade(sandbox, payment)["transaction_id"]
    assert notification.dedupe_key == f"{payment.gateway_trade_no}:SUCCESS"
    (delivery,) = deliveries(sandbox, payment, 1)
    # Answered with the exact CDATA SUCCESS XML, which is what stops the resends.
    assert (delivery["status_code"], delivery["acknowledged"], delivery["body"]) == (200, True, EXACT_ACK.decode())

    status = shop.wait_until_done(payment.out_trade_no)
    assert status["payment"] == "succeeded" and status["order"] == "paid"
    result = shop.get(status["result_url"])
    assert shop.result_of(result) == "success"
    assert "¥119.70" in result.text
    assert paid_events(order) == 1


def test_native_qr_payment_signed_with_hmac_sha256(shop, sandbox, settings):
    settings.GATEWAY_OPTIONS = {**settings.GATEWAY_OPTIONS,
                                "wechatpay": sandbox_wechatpay_v2_options(sandbox, sign_type="HMAC-SHA256")}
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "wechatpay:qr")
    payment = Payment.objects.get(order=order)

    sandbox.control("POST", f"wechatpay/trades/{payment.out_trade_no}/pay")

    wait_for(lambda: processed(payment), what="the notification")
    notification = GatewayNotification.objects.get(out_trade_no=payment.out_trade_no)
    fields = fields_of(bytes(notification.body))
    assert fields["sign_type"] == "HMAC-SHA256" and len(fields["sign"]) == 64
    assert notification.outcome == NotificationOutcome.APPLIED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


def test_mweb_payment_on_a_phone_goes_to_wechat_and_back_to_the_success_page(shop, sandbox):
    order = shop.place_order({"NOTE-A5": 1})

    to_wechat = shop.choose_unfollowed(order, "wechatpay:wap", device="mobile")

    payment = Payment.objects.get(order=order)
    assert payment.method == PayMethod.WAP
    assert to_wechat.status_code == 302
    mweb_url = to_wechat.headers["Location"]
    assert mweb_url.startswith(sandbox.url("/wechatpay/h5/"))
    back_url = f"{shop.base_url}/payments/wechatpay/return/?out_trade_no={payment.out_trade_no}"
    assert parse_qs(urlsplit(mweb_url).query)["redirect_url"] == [back_url]
    assert sandbox_trade(sandbox, payment)["trade_type"] == "MWEB"

    h5_page = shop.sandbox.arrive(to_wechat)
    assert h5_page.state == "pending"
    back = shop.sandbox.press(h5_page, "sandbox-pay")
    assert (back.status_code, back.headers["Location"]) == (302, back_url)

    # The return proves nothing: the shop asks (orderquery) before showing success.
    result = shop.http.get(back_url, timeout=20)

    assert result.url.endswith(f"/payments/{payment.out_trade_no}/result/")
    assert shop.result_of(result) == "success"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and payment.returned_at is not None
    wait_for(lambda: processed(payment), what="the notification")
    assert succeeded_transitions(payment) == 1
    assert paid_events(order) == 1


def test_an_mweb_url_lives_five_minutes_and_a_new_attempt_gets_a_new_one(shop, sandbox):
    order = shop.place_order({"NOTE-A5": 1})
    stale = shop.choose_unfollowed(order, "wechatpay:wap", device="mobile").headers["Location"]
    sandbox.control("POST", "settings", {"clock_offset_seconds": 301})

    expired = shop.http.get(stale, timeout=20)

    assert expired.status_code == 410
    assert 'data-status="link-expired"' in expired.text
    first = Payment.objects.get(order=order)
    assert sandbox_trade(sandbox, first)["trade_state"] == "NOTPAY"  # nothing paid through it

    fresh = shop.choose_unfollowed(order, "wechatpay:wap", device="mobile").headers["Location"]
    page = shop.sandbox.open(fresh)
    assert page.state == "pending"
    second = Payment.objects.filter(order=order).exclude(pk=first.pk).get()
    shop.sandbox.press(page, "sandbox-pay")
    wait_for(lambda: processed(second), what="the notification")
    assert Payment.objects.get(pk=second.pk).status == PaymentStatus.SUCCEEDED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


def test_lost_notification_is_healed_by_the_janitor(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "wechatpay.notify", "mode": "drop"})
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "wechatpay:qr")
    payment = Payment.objects.get(order=order)

    sandbox.control("POST", f"wechatpay/trades/{payment.out_trade_no}/pay")

    sandbox.wait_for(lambda: sandbox.control("GET", f"notifications?out_trade_no={payment.out_trade_no}")
                     ["notifications"][0]["status"] == "dropped", what="the drop")
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PENDING

    assert payments_query_stale(now=timezone.now() + timedelta(minutes=5)) == 1

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.gateway_trade_no == sandbox_trade(sandbox, payment)["transaction_id"]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert paid_events(order) == 1
    assert not GatewayNotification.objects.exists()


def test_thirty_parallel_copies_make_one_transition_and_all_are_acknowledged(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "wechatpay.notify", "mode": "duplicate", "copies": 30})
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "wechatpay:qr")
    payment = Payment.objects.get(order=order)

    sandbox.control("POST", f"wechatpay/trades/{payment.out_trade_no}/pay")

    wait_for(lambda: processed(payment, 30), timeout=30, what="thirty notifications")
    sent = deliveries(sandbox, payment, 30)
    assert all(d["status_code"] == 200 and d["acknowledged"] and d["body"] == EXACT_ACK.decode() for d in sent)
    assert succeeded_transitions(payment) == 1
    assert paid_events(order) == 1
    outcomes = list(GatewayNotification.objects.values_list("outcome", flat=True))
    assert (outcomes.count(NotificationOutcome.APPLIED), outcomes.count(NotificationOutcome.DUPLICATE)) == (1, 29)


def test_forged_and_lying_notifications_are_refused_and_the_genuine_one_applied(shop, sandbox):
    variants = ["bad_signature", "tampered_amount", "wrong_mchid"]
    sandbox.control("POST", "faults", {"target": "wechatpay.notify", "mode": "forge", "variants": variants})
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "wechatpay:qr")
    payment = Payment.objects.get(order=order)

    sandbox.control("POST", f"wechatpay/trades/{payment.out_trade_no}/pay")

    wait_for(lambda: GatewayNotification.objects.exclude(outcome=NotificationOutcome.RECEIVED).count() >= 4,
             what="four notifications")
    details = {row.outcome_detail: (row.outcome, row.verified) for row in GatewayNotification.objects.all()}
    rejected = [detail for detail, (outcome, _) in details.items() if outcome == NotificationOutcome.REJECTED]
    assert len(rejected) == 3, details
    assert any("does not verify" in detail for detail in rejected)
    assert any("gateway says 1 fen, attempt is 1999" in detail for detail in rejected)
    assert any("mch_id" in detail for detail in rejected)
    assert succeeded_transitions(payment) == 1
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    forged = [d for d in deliveries(sandbox, payment, 4) if d["variant"] != "real"]
    assert all(d["status_code"] == 400 and "FAIL" in d["body"] for d in forged)


def hostile_bodies(payment: Payment) -> list[tuple[str, bytes]]:
    genuine = {"return_code": "SUCCESS", "appid": "wx8888888888888888", "mch_id": "1900000001",
               "nonce_str": "n0nce", "result_code": "SUCCESS", "total_fee": "1999", "fee_type": "CNY",
               "transaction_id": "4200000000202511221234567890", "out_trade_no": payment.out_trade_no,
               "time_end": "20251122095830"}  # fmt: skip
    signed = xml_of({**genuine, "sign": sign(genuine)})
    return [
        ("XXE", b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                b"<xml><return_code>&e;</return_code></xml>"),
        ("billion laughs", b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                           b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><xml><return_code>&c;</return_code></xml>'),
        ("a DOCTYPE in a signed notification", b"<!DOCTYPE xml>" + signed),
        ("non-UTF-8", "<xml><return_code>SUCCESS</return_code><body>茶</body></xml>".encode("gbk")),
        ("2 MB", b"<xml><return_code>SUCCESS</return_code><a>" + b"A" * (2 * 1024 * 1024) + b"</a></xml>"),
        ("truncated", signed[: len(signed) // 2]),
        ("empty", b""),
        ("JSON", b'{"return_code": "SUCCESS"}'),
        ("unsigned", xml_of(genuine)),
    ]


@pytest.mark.parametrize("path", [NOTIFY_PATH, REFUND_NOTIFY_PATH])
def test_hostile_xml_is_answered_with_the_fail_xml_stored_as_rejected_never_a_500(shop, sandbox, live_server, path):
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "wechatpay:qr")
    payment = Payment.objects.get(order=order)
    bodies = hostile_bodies(payment)

    for what, body in bodies:
        response = requests.post(f"{live_server.url}{path}", data=body, headers={"Content-Type": "text/xml"},
                                 timeout=20)  # fmt: skip
        assert response.status_code == 400, (what, response.status_code, response.text[:200])
        assert response.headers["Content-Type"].startswith("text/xml"), what
        assert is_fail_xml(response), (what, response.text[:200])
        assert b"root:" not in response.content  # nothing of /etc/passwd, ever

    rows = list(GatewayNotification.objects.order_by("pk"))
    assert [(row.outcome, row.verified) for row in rows] == [(NotificationOutcome.REJECTED, False)] * len(bodies)
    assert all("root:" not in row.outcome_detail for row in rows)
    # Over NOTIFICATION_MAX_BODY_BYTES: recorded as rejected by its size, its content never stored.
    assert bytes(rows[4].body) == b"" and "over the limit" in rows[4].outcome_detail
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PENDING
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert not PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED).exists()


def test_timed_out_order_is_closed_at_the_sandbox_once_wechat_allows_it(shop, sandbox, caplog):
    sandbox.control("POST", "settings", {"time_scale": 1.0})
    stock_before = Sku.objects.get(code="SCARF-RED").stock
    order = shop.place_order({"SCARF-RED": 2})
    shop.choose(order, "wechatpay:qr")
    payment = Payment.objects.get(order=order)
    later = order.expires_at + timedelta(seconds=1)

    # The sandbox clock says the order is seconds old: closeorder answers
    # SYSTEMERROR (v2's "not within 5 minutes") and the order waits.
    with caplog.at_level(logging.WARNING, logger="payments.services"):
        assert orders_close_expired(now=later) == 0
    assert "SYSTEMERROR" in caplog.text
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT

    sandbox.control("POST", "settings", {"clock_offset_seconds": 400})
    assert orders_close_expired(now=later) == 1

    assert Order.objects.get(pk=order.pk).status == OrderStatus.CLOSED
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.CLOSED
    assert sandbox_trade(sandbox, payment)["trade_state"] == "CLOSED"
    assert Sku.objects.get(code="SCARF-RED").stock == stock_before
