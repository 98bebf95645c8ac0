"""WeChat Pay API v3 end to end: the live shop and the sandbox process, real HTTP,
real RSA signatures both ways and AES-GCM encrypted notifications."""
import json
import logging
import secrets
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone

from orders.models import Order, OrderEvent, OrderStatus
from orders.services import orders_close_expired
from payments.gateways.base import PayMethod
from payments.models import (
    GatewayNotification,
    NotificationOutcome,
    Payment,
    PaymentEvent,
    PaymentStatus,
)
from payments.services import payments_query_stale
from shop.models import Sku
from tests.polling import wait_for
from tests.sandbox.wechatpay_client import PUBLIC_KEY_ID, SCHEME, key_path, rsa_sign
from tests.sandbox_process import SandboxControlError

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NOTIFY_PATH = "/payments/wechatpay/notify/"


def paid_events(order: Order) -> int:
    return OrderEvent.objects.filter(order=order, to_status=OrderStatus.PAID).count()


def succeeded_transitions(payment: Payment) -> int:
    return PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED).exclude(
        from_status=PaymentStatus.SUCCEEDED).count()


def notifications_settled(payment: Payment, count: int = 1) -> bool:
    """The shop has processed `count` notifications for this payment."""
    done = GatewayNotification.objects.filter(out_trade_no=payment.out_trade_no).exclude(
        outcome=NotificationOutcome.RECEIVED)
    return done.count() >= count


def sandbox_trade(sandbox, payment: Payment) -> dict:
    return sandbox.control("GET", f"wechatpay/trades/{payment.out_trade_no}")


def pay_at_sandbox(sandbox, payment: Payment) -> None:
    """The shopper scans the code and pays in the app (the control API's shortcut)."""
    sandbox.control("POST", f"wechatpay/trades/{payment.out_trade_no}/scan")
    sandbox.control("POST", f"wechatpay/trades/{payment.out_trade_no}/pay")


def delivery_log(sandbox, payment: Payment, count: int) -> list[dict]:
    """The sandbox's log of every POST of this payment's notification, once `count` are in."""
    def logged():
        notifications = sandbox.control("GET", f"notifications?out_trade_no={payment.out_trade_no}&kind=payment")[
            "notifications"]
        deliveries = [delivery for notification in notifications for delivery in notification["deliveries"]]
        return deliveries if len(deliveries) >= count else None

    return sandbox.wait_for(logged, what=f"{count} deliveries in the sandbox log")


def is_fail_json(body: bytes | str) -> bool:
    """§5.5: a refused notification is answered {"code":"FAIL","message":...}."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return data.get("code") == "FAIL" and isinstance(data.get("message"), str) and bool(data["message"])


def test_native_qr_payment_from_checkout_to_success_page(shop, sandbox):
    order = shop.place_order({"CUP-WHITE": 3})

    qr_page = shop.choose(order, "wechatpay:qr")

    payment = Payment.objects.get(order=order)
    assert (payment.gateway, payment.method, payment.status) == ("wechatpay", PayMethod.QR, PaymentStatus.PENDING)
    assert qr_page.url.endswith(f"/payments/{payment.out_trade_no}/qr/")
    code_url = shop.qr_content(qr_page)
    assert code_url.startswith(sandbox.url("/wechatpay/scan/"))
    assert sandbox_trade(sandbox, payment)["trade_type"] == "NATIVE"
    assert shop.get(f"/payments/{payment.out_trade_no}/status/").json()["done"] is False

    # The phone opens what the QR code says, and pays.
    scan_page = shop.sandbox.open(code_url)
    assert "119.70" in scan_page.html
    assert scan_page.state == "pending"
    shop.sandbox.press(scan_page, "sandbox-pay")

    # The encrypted TRANSACTION.SUCCESS reaches the notify URL and is what pays the order.
    wait_for(lambda: notifications_settled(payment), what="the notification")
    notification = GatewayNotification.objects.get(out_trade_no=payment.out_trade_no)
    assert notification.verified is True
    assert notification.outcome == NotificationOutcome.APPLIED, notification.outcome_detail
    assert notification.dedupe_key.startswith("EV-")
    payment.refresh_from_db()
    trade = sandbox_trade(sandbox, payment)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.gateway_trade_no == trade["transaction_id"] and len(payment.gateway_trade_no) == 28
    assert PaymentEvent.objects.get(payment=payment, to_status=PaymentStatus.SUCCEEDED).notification == notification
    (delivery,) = delivery_log(sandbox, payment, 1)
    assert (delivery["status_code"], delivery["acknowledged"]) == (200, True)

    status = shop.wait_until_done(payment.out_trade_no)
    assert status["payment"] == "succeeded" and status["order"] == "paid"
    result = shop.get(status["result_url"])
    assert shop.result_of(result) == "success"
    assert "¥119.70" in result.text
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert paid_events(order) == 1


def test_h5_payment_on_a_phone_goes_to_wechat_and_back_to_the_success_page(shop, sandbox):
    order = shop.place_order({"NOTE-A5": 1})

    to_wechat = shop.choose_unfollowed(order, "wechatpay:wap", device="mobile")

    payment = Payment.objects.get(order=order)
    assert payment.method == PayMethod.WAP  # WeChat Pay H5
    assert to_wechat.status_code == 302
    h5_url = to_wechat.headers["Location"]
    assert h5_url.startswith(sandbox.url("/wechatpay/h5/"))
    query = parse_qs(urlsplit(h5_url).query)
    assert query["prepay_id"][0].startswith("wx")
    back_url = f"{shop.base_url}/payments/wechatpay/return/?out_trade_no={payment.out_trade_no}"
    assert query["redirect_url"] == [back_url]
    assert sandbox_trade(sandbox, payment)["trade_type"] == "MWEB"

    h5_page = shop.sandbox.arrive(to_wechat)
    assert "19.99" in h5_page.html
    assert h5_page.state == "pending"
    back = shop.sandbox.press(h5_page, "sandbox-pay")
    # WeChat adds nothing to redirect_url: the shop must ask, not read the return.
    assert (back.status_code, back.headers["Location"]) == (302, back_url)

    result = shop.http.get(back_url, timeout=20)

    assert result.url.endswith(f"/payments/{payment.out_trade_no}/result/")
    assert shop.result_of(result) == "success"
    assert "¥19.99" in result.text
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.method == PayMethod.WAP
    assert payment.returned_at is not None
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    # Whichever came first, the return's query or the notification, paid it once.
    wait_for(lambda: notifications_settled(payment), what="the notification")
    notification = GatewayNotification.objects.get(out_trade_no=payment.out_trade_no)
    assert notification.verified is True
    assert notification.outcome in (NotificationOutcome.APPLIED, NotificationOutcome.UNCHANGED)
    assert succeeded_transitions(payment) == 1
    assert paid_events(order) == 1


def test_h5_on_a_computer_is_not_offered_and_a_forged_choice_is_a_field_error(shop, sandbox):
    order = shop.place_order({"NOTE-A5": 1})
    assert 'value="wechatpay:wap"' not in shop.get(f"/orders/{order.order_no}/pay/").text
    assert 'value="wechatpay:qr"' in shop.get(f"/orders/{order.order_no}/pay/").text

    page = shop.choose(order, "wechatpay:wap", device="desktop")

    assert page.status_code == 400
    (error,) = shop.field_errors(page, "choice")
    assert "This way to pay is not offered on this device" in error
    assert 'data-testid="cashier-form"' in page.text
    assert not Payment.objects.filter(order=order).exists()
    assert sandbox.control("GET", "wechatpay/trades")["trades"] == []
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


def test_lost_notification_is_healed_by_the_janitor(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "wechatpay.notify", "mode": "drop"})
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "wechatpay:qr")
    payment = Payment.objects.get(order=order)

    pay_at_sandbox(sandbox, payment)

    sandbox.wait_for(lambda: sandbox.control("GET", f"notifications?out_trade_no={payment.out_trade_no}")
                     ["notifications"][0]["status"] == "dropped", what="the drop")
    assert sandbox_trade(sandbox, payment)["trade_state"] == "SUCCESS"
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PENDING

    assert payments_query_stale(now=timezone.now() + timedelta(minutes=5)) == 1

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.gateway_trade_no == sandbox_trade(sandbox, payment)["transaction_id"]
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert paid_events(order) == 1
    assert not GatewayNotification.objects.exists()


def test_timed_out_order_is_closed_at_the_sandbox_once_wechat_allows_it(shop, sandbox, caplog):
    # Real minutes for the sandbox's "no close within 5 minutes of the order" rule;
    # its clock is then moved on rather than waited for.
    sandbox.control("POST", "settings", {"time_scale": 1.0})
    stock_before = Sku.objects.get(code="SCARF-RED").stock
    order = shop.place_order({"SCARF-RED": 2})
    shop.choose(order, "wechatpay:qr")
    payment = Payment.objects.get(order=order)
    sandbox.control("POST", f"wechatpay/trades/{payment.out_trade_no}/scan")
    assert Sku.objects.get(code="SCARF-RED").stock == stock_before - 2
    later = order.expires_at + timedelta(seconds=1)

    # The sandbox clock says the order is seconds old: WeChat refuses the close
    # (403 RULE_LIMIT) and the janitor leaves the order for its next run.
    with caplog.at_level(logging.WARNING, logger="payments.services"):
        assert orders_close_expired(now=later) == 0
    assert "RULE_LIMIT" in caplog.text
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PENDING
    assert sandbox_trade(sandbox, payment)["trade_state"] == "NOTPAY"
    assert Sku.objects.get(code="SCARF-RED").stock == stock_before - 2

    sandbox.control("POST", "settings", {"clock_offset_seconds": 400})
    assert orders_close_expired(now=later) == 1

    assert Order.objects.get(pk=order.pk).status == OrderStatus.CLOSED
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.CLOSED
    assert sandbox_trade(sandbox, payment)["trade_state"] == "CLOSED"
    assert Sku.objects.get(code="SCARF-RED").stock == stock_before
    # Closed for good: the phone can no longer pay it.
    with pytest.raises(SandboxControlError) as refused:
        sandbox.control("POST", f"wechatpay/trades/{payment.out_trade_no}/pay")
    assert refused.value.status == 409
    assert orders_close_expired(now=later) == 0


FORGERIES = {
    # variant: (what the stored reason says, whether the signature verified)
    "bad_signature": ("the signature does not verify", False),
    "unknown_serial": ("unknown Wechatpay-Serial", False),
    "stale_timestamp": ("is more than 300 s from", False),
    "undecryptable": ("does not decrypt", False),
    "tampered_amount": ("gateway says 1 fen, attempt is 1999", True),
    "wrong_mchid": ("is not ours", False),
}


def test_forged_and_lying_notifications_are_rejected_and_the_genuine_one_applied(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "wechatpay.notify", "mode": "forge", "variants": list(FORGERIES)})
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "wechatpay:qr")
    payment = Payment.objects.get(order=order)

    pay_at_sandbox(sandbox, payment)

    # Rows that failed verification do not know their trade: count them all.
    wait_for(lambda: GatewayNotification.objects.exclude(outcome=NotificationOutcome.RECEIVED).count() >= 7,
             what="seven notifications")
    rows = list(GatewayNotification.objects.order_by("pk"))
    assert len(rows) == 7
    applied = [row for row in rows if row.outcome == NotificationOutcome.APPLIED]
    rejected = [row for row in rows if row.outcome == NotificationOutcome.REJECTED]
    assert (len(applied), len(rejected)) == (1, 6), [(row.outcome, row.outcome_detail) for row in rows]
    (genuine,) = applied
    assert genuine.verified is True and genuine.out_trade_no == payment.out_trade_no
    for variant, (reason, verified) in FORGERIES.items():
        matching = [row for row in rejected if reason in row.outcome_detail]
        assert len(matching) == 1, (variant, [row.outcome_detail for row in rejected])
        assert matching[0].verified is verified, variant
    # Every lie was dealt with before the genuine one arrived, and none moved anything.
    assert all(row.processed_at <= genuine.received_at for row in rejected)
    (paid,) = PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED)
    assert paid.notification == genuine
    assert succeeded_transitions(payment) == 1
    assert OrderEvent.objects.get(order=order, to_status=OrderStatus.PAID).created_at >= genuine.received_at
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert paid_events(order) == 1
    # The sandbox saw a 4xx with the FAIL JSON for each forgery (so WeChat would
    # send again), and a 2xx for the genuine one.
    deliveries = delivery_log(sandbox, payment, 7)
    forged = {d["variant"]: d for d in deliveries if d["variant"] != "real"}
    assert set(forged) == set(FORGERIES)
    for variant, delivery in forged.items():
        assert 400 <= delivery["status_code"] < 500, (variant, delivery)
        assert is_fail_json(delivery["body"]), (variant, delivery["body"])
    (real,) = [d for d in deliveries if d["variant"] == "real"]
    assert (real["status_code"], real["acknowledged"]) == (200, True)


def signed_headers(sandbox, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers as WeChat Pay signs them, with the sandbox's real platform key."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_hex(16).upper()
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = rsa_sign(message, key_path(sandbox, "platform", "private").read_bytes())
    return {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": PUBLIC_KEY_ID,
        "Wechatpay-Signature-Type": SCHEME,
    }


def test_malformed_posts_are_rejected_with_the_fail_json_never_a_500(shop, sandbox, live_server):
    notify = f"{live_server.url}{NOTIFY_PATH}"
    deep = b"[" * 100_000 + b"]" * 100_000
    envelope_without_resource = json.dumps({
        "id": "EV-" + "0" * 32, "create_time": "2025-01-01T10:00:00+08:00", "event_type": "TRANSACTION.SUCCESS",
        "resource_type": "encrypt-resource", "summary": "支付成功", "resource": "not an object",
    }).encode()
    posts = [
        # (what, body, headers)
        ("empty body, no headers", b"", {}),
        ("JSON without any Wechatpay header", b'{"id": "EV-1"}', {"Content-Type": "application/json"}),
        ("garbage bytes", b"\xff\xfe\x00garbage", {"Content-Type": "application/octet-stream"}),
        ("a form post", b"out_trade_no=1&sign=abc", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("unsigned headers", b"{}", {**signed_headers(sandbox, b"{}"), "Wechatpay-Signature": "bm90IGl0"}),
        ("timestamp not a number", b"{}", {**signed_headers(sandbox, b"{}"), "Wechatpay-Timestamp": "soon"}),
        # Validly signed with the real platform key, so that the body itself is judged.
        ("signed malformed JSON", b'{"id": "EV-', signed_headers(sandbox, b'{"id": "EV-')),
        ("signed JSON array", b"[1, 2]", signed_headers(sandbox, b"[1, 2]")),
        ("signed invalid UTF-8", b'{"id": "\xff"}', signed_headers(sandbox, b'{"id": "\xff"}')),
        ("signed deep nesting", deep, signed_headers(sandbox, deep)),
        ("signed envelope without a resource object", envelope_without_resource,
         signed_headers(sandbox, envelope_without_resource)),
    ]
    for what, body, headers in posts:
        response = requests.post(notify, data=body, headers=headers, timeout=20)
        assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:200])
        assert response.headers["Content-Type"].startswith("application/json"), what
        assert is_fail_json(response.content), (what, response.text[:200])

    outcomes = list(GatewayNotification.objects.values_list("outcome", "verified"))
    assert outcomes == [(NotificationOutcome.REJECTED, False)] * len(posts)
    assert not Payment.objects.exists()


def test_thirty_parallel_copies_make_one_transition_and_all_are_acknowledged(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "wechatpay.notify", "mode": "duplicate", "copies": 30})
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "wechatpay:qr")
    payment = Payment.objects.get(order=order)

    pay_at_sandbox(sandbox, payment)

    wait_for(lambda: notifications_settled(payment, 30), timeout=30, what="thirty notifications")
    deliveries = delivery_log(sandbox, payment, 30)
    assert len(deliveries) == 30
    assert all(200 <= d["status_code"] < 300 and d["acknowledged"] for d in deliveries), deliveries
    (notification,) = sandbox.control("GET", f"notifications?out_trade_no={payment.out_trade_no}")["notifications"]
    assert (notification["status"], notification["attempts"]) == ("delivered", 1)
    assert succeeded_transitions(payment) == 1
    assert PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED,
                                       from_status=PaymentStatus.PENDING).count() == 1
    assert paid_events(order) == 1
    outcomes = list(GatewayNotification.objects.values_list("outcome", flat=True))
    assert len(outcomes) == 30
    assert outcomes.count(NotificationOutcome.APPLIED) == 1
    assert outcomes.count(NotificationOutcome.DUPLICATE) == 29
    (original,) = GatewayNotification.objects.filter(outcome=NotificationOutcome.APPLIED)
    assert set(GatewayNotification.objects.filter(outcome=NotificationOutcome.DUPLICATE)
               .values_list("duplicate_of", flat=True)) == {original.pk}
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
