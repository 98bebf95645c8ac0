"""WeChat Pay v3 payment and refund notifications: verified, decrypted, checked (§4, §5, §9).

Every hostile or broken notification is an InvalidNotification, never any
other exception (the endpoint must never answer 500 for bad input).
"""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from payments.exceptions import InvalidNotification
from payments.gateways.base import (
    Acknowledgement,
    GatewayRefundStatus,
    PaymentNotification,
    RefundNotification,
    TradeStatus,
)
from tests.payments.gateways.fixtures.wechatpay import stub

BEIJING = timezone(timedelta(hours=8))


@pytest.fixture
def gateway():
    return stub.make_gateway()


def body_of(plain=None, *, event_type="TRANSACTION.SUCCESS", **resource_kwargs) -> bytes:
    resource = stub.encrypt_resource(plain if plain is not None else stub.transaction(), **resource_kwargs)
    return stub.json_bytes(stub.envelope(resource, event_type=event_type))


def refund_body(plain=None, *, event_type="REFUND.SUCCESS") -> bytes:
    resource = stub.encrypt_resource(plain if plain is not None else stub.refund_object(),
                                     associated_data="refund", original_type="refund")
    return stub.json_bytes(stub.envelope(resource, event_type=event_type, notification_id="EV-REFUND-1"))


# -- payments -----------------------------------------------------------------


def test_a_valid_payment_notification_parses_exactly(gateway):
    plain = stub.transaction()
    parsed = gateway.parse_notification(stub.raw_notification(body_of(plain)))
    assert parsed == PaymentNotification(
        out_trade_no="SO20251122000123P01",
        status=TradeStatus.SUCCEEDED,
        amount_minor=8800,
        gateway_trade_no="4200002903202511221234567890",
        dedupe_key="EV-2018022511223320873",
        paid_at=datetime(2025, 11, 22, 9, 58, 30, tzinfo=BEIJING),
        raw={**plain, "notification_id": "EV-2018022511223320873", "event_type": "TRANSACTION.SUCCESS"},
    )


def test_the_amount_is_the_order_total_not_what_the_payer_paid(gateway):
    """§5.3: with a coupon payer_total is smaller; the attempt is compared on amount.total."""
    plain = stub.transaction(amount={"total": 8800, "payer_total": 1, "currency": "CNY"})
    assert gateway.parse_notification(stub.raw_notification(body_of(plain))).amount_minor == 8800


def test_a_stored_notification_is_judged_by_when_it_was_received(gateway):
    """Re-processed an hour later from the inbox: still valid (freshness uses received_at)."""
    gateway.clock = lambda: stub.NOW + timedelta(hours=1)
    parsed = gateway.parse_notification(stub.raw_notification(body_of(), received_at=stub.NOW + timedelta(seconds=5)))
    assert parsed.out_trade_no == "SO20251122000123P01"


def test_the_same_notification_sent_twice_has_one_dedupe_key(gateway):
    first = gateway.parse_notification(stub.raw_notification(body_of()))
    again = gateway.parse_notification(stub.raw_notification(body_of(), nonce="ANOTHERNONCE0000000000000000000X"))
    assert first.dedupe_key == again.dedupe_key == "EV-2018022511223320873"


def with_resource(body: bytes, **changes) -> bytes:
    """The envelope re-signed by WeChat's key but with resource fields changed in transit."""
    envelope = json.loads(body)
    return stub.json_bytes({**envelope, "resource": {**envelope["resource"], **changes}})


def flipped(ciphertext: str) -> str:
    raw = bytearray(base64.b64decode(ciphertext))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def hostile_cases():
    stranger = stub.stranger_key
    good = body_of()
    return [
        ("bad signature", lambda: stub.raw_notification(good, key=stranger()), "does not verify"),
        ("signature of another body", lambda: stub.raw_notification(
            good, signature=stub.signed_headers(body_of(stub.transaction(amount={"total": 1, "currency": "CNY"})))[
                "Wechatpay-Signature"]), "does not verify"),
        ("unknown serial", lambda: stub.raw_notification(
            good, serial="PUB_KEY_ID_0119000000002025112200000000000099"), "unknown Wechatpay-Serial"),
        ("platform certificate serial", lambda: stub.raw_notification(
            good, serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1"), "unknown Wechatpay-Serial"),
        ("replayed, stale timestamp", lambda: stub.raw_notification(
            good, received_at=stub.NOW + timedelta(minutes=5)), "more than 300 s"),
        ("timestamp from the future", lambda: stub.raw_notification(
            good, timestamp=str(int(stub.TS) + 600)), "more than 300 s"),
        ("SIGNTEST probe", lambda: stub.raw_notification(
            good, signature="WECHATPAY/SIGNTEST/" + stub.signed_headers(good)["Wechatpay-Signature"][19:]),
         "does not verify"),
        ("wrong signature type", lambda: stub.raw_notification(
            good, signature_type="WECHATPAY2-SM2-WITH-SM3"), "Signature-Type"),
        ("missing signature header", lambda: stub.raw_notification(
            good, drop=("Wechatpay-Signature",)), "missing header Wechatpay-Signature"),
        ("missing serial header", lambda: stub.raw_notification(
            good, drop=("Wechatpay-Serial",)), "missing header Wechatpay-Serial"),
        ("no headers at all", lambda: stub.raw_notification(good, headers={}), "missing header"),
        ("undecryptable resource (other APIv3 key)", lambda: stub.raw_notification(
            body_of(key="AnotherApiV3Key0123456789abcdefX")), "InvalidTag"),
        ("associated data changed in transit", lambda: stub.raw_notification(
            with_resource(good, associated_data="refund")), "InvalidTag"),
        ("ciphertext tampered in transit", lambda: stub.raw_notification(
            with_resource(good, ciphertext=flipped(json.loads(good)["resource"]["ciphertext"]))), "InvalidTag"),
        ("malformed JSON, validly signed", lambda: stub.raw_notification(b'{"id": "EV-1", "resource": {'),
         "not a JSON object"),
        ("a JSON array", lambda: stub.raw_notification(b"[]"), "not a JSON object"),
        ("non-UTF-8 body, validly signed", lambda: stub.raw_notification(b'{"id": "\xff\xfe"}'),
         "not a JSON object"),
        ("deeply nested JSON", lambda: stub.raw_notification(b"[" * 100_000 + b"]" * 100_000),
         "not a JSON object"),
        ("a 5000-digit number", lambda: stub.raw_notification(b'{"id": ' + b"9" * 5000 + b"}"),
         "not a JSON object"),
        ("NaN", lambda: stub.raw_notification(b'{"id": NaN}'), "not a JSON object"),
        ("empty body", lambda: stub.raw_notification(b""), "not a JSON object"),
        ("no notification id", lambda: stub.raw_notification(stub.json_bytes(
            {**json.loads(good), "id": None})), "notification id"),
        ("an id too long for the inbox", lambda: stub.raw_notification(stub.json_bytes(
            {**json.loads(good), "id": "EV-" + "9" * 200})), "notification id"),
        ("plain resource_type", lambda: stub.raw_notification(stub.json_bytes(
            {**json.loads(good), "resource_type": "plain"})), "resource_type"),
        ("resource not an object", lambda: stub.raw_notification(stub.json_bytes(
            {**json.loads(good), "resource": "x"})), "no resource object"),
        ("wrong algorithm", lambda: stub.raw_notification(with_resource(good, algorithm="AEAD_SM4_GCM")),
         "algorithm"),
        ("plaintext not JSON", lambda: stub.raw_notification(body_of(b"\x00not json")), "decrypted resource"),
        ("wrong mchid", lambda: stub.raw_notification(body_of(stub.transaction(mchid="1900000002"))),
         "mchid '1900000002' is not ours"),
        ("wrong appid", lambda: stub.raw_notification(body_of(stub.transaction(appid="wx0000000000000000"))),
         "appid 'wx0000000000000000' is not ours"),
        ("mchid missing", lambda: stub.raw_notification(body_of({
            k: v for k, v in stub.transaction().items() if k != "mchid"})), "mchid None is not ours"),
        ("wrong event_type", lambda: stub.raw_notification(body_of(event_type="REFUND.SUCCESS")),
         "event_type 'REFUND.SUCCESS'"),
        ("trade_state NOTPAY", lambda: stub.raw_notification(body_of(stub.transaction(trade_state="NOTPAY"))),
         "trade_state 'NOTPAY'"),
        ("currency USD", lambda: stub.raw_notification(body_of(stub.transaction(
            amount={"total": 8800, "currency": "USD"}))), "currency"),
        ("amount as a string", lambda: stub.raw_notification(body_of(stub.transaction(
            amount={"total": "8800", "currency": "CNY"}))), "amount.total"),
        ("amount with a fraction", lambda: stub.raw_notification(body_of(stub.transaction(
            amount={"total": 88.5, "currency": "CNY"}))), "amount.total"),
        ("amount true", lambda: stub.raw_notification(body_of(stub.transaction(
            amount={"total": True, "currency": "CNY"}))), "amount.total"),
        ("amount zero", lambda: stub.raw_notification(body_of(stub.transaction(
            amount={"total": 0, "currency": "CNY"}))), "amount.total"),
        ("huge amount", lambda: stub.raw_notification(body_of(stub.transaction(
            amount={"total": 10**30, "currency": "CNY"}))), "amount.total"),
        ("amount not an object", lambda: stub.raw_notification(body_of(stub.transaction(amount=[8800]))),
         "amount is missing"),
        ("out_trade_no missing", lambda: stub.raw_notification(body_of(stub.transaction(out_trade_no=None))),
         "out_trade_no"),
        ("out_trade_no a list", lambda: stub.raw_notification(body_of(stub.transaction(out_trade_no=["x"]))),
         "out_trade_no"),
        ("transaction_id missing", lambda: stub.raw_notification(body_of(stub.transaction(transaction_id=""))),
         "transaction_id"),
        ("success_time malformed", lambda: stub.raw_notification(body_of(stub.transaction(
            success_time="2025-11-22 09:58:30"))), "success_time"),
        ("trade_state a dict", lambda: stub.raw_notification(body_of(stub.transaction(trade_state={"a": 1}))),
         "trade_state <dict>"),
    ]


@pytest.mark.parametrize(("case", "make", "reason"), hostile_cases(), ids=[c[0] for c in hostile_cases()])
def test_hostile_payment_notifications_are_invalid(gateway, case, make, reason):
    with pytest.raises(InvalidNotification) as caught:
        gateway.parse_notification(make())
    assert reason in caught.value.reason


def test_reasons_never_carry_decrypted_text(gateway):
    plain = stub.transaction(trade_state="NOTPAY", payer={"openid": "o-SECRET-OPENID"})
    with pytest.raises(InvalidNotification) as caught:
        gateway.parse_notification(stub.raw_notification(body_of(plain)))
    assert "o-SECRET-OPENID" not in caught.value.reason


def test_the_signature_is_checked_before_anything_is_read(gateway):
    """An unsigned body that would also fail later checks is refused for its signature."""
    body = body_of(stub.transaction(mchid="1900000002"))
    with pytest.raises(InvalidNotification, match="does not verify"):
        gateway.parse_notification(stub.raw_notification(body, key=stub.stranger_key()))


@pytest.mark.parametrize(
    "body",
    [b"\x00", b"\xff" * 64, b"null", b"1", b'"x"', b"{}", b'{"resource": null}', b'{"id": 1}',
     b'{"id": "EV", "event_type": 7}', b'{"id": "EV", "event_type": "TRANSACTION.SUCCESS"}'],
)
def test_garbage_signed_bodies_are_invalid_notifications(gateway, body):
    for parse in (gateway.parse_notification, gateway.parse_refund_notification):
        with pytest.raises(InvalidNotification):
            parse(stub.raw_notification(body))


@pytest.mark.parametrize(
    "headers",
    [
        {"wechatpay-timestamp": "x" * 100, "wechatpay-nonce": "n", "wechatpay-signature": "s",
         "wechatpay-serial": stub.PUBLIC_KEY_ID},
        {"wechatpay-timestamp": "-1", "wechatpay-nonce": "n", "wechatpay-signature": "s",
         "wechatpay-serial": stub.PUBLIC_KEY_ID},
        {"wechatpay-timestamp": "١٧٦٣٧٧٦٨٠٠", "wechatpay-nonce": "n", "wechatpay-signature": "s",
         "wechatpay-serial": stub.PUBLIC_KEY_ID},
        {"wechatpay-timestamp": stub.TS, "wechatpay-nonce": "n", "wechatpay-signature": "签名",
         "wechatpay-serial": stub.PUBLIC_KEY_ID},
    ],
)
def test_garbage_headers_are_invalid_notifications(gateway, headers):
    with pytest.raises(InvalidNotification):
        gateway.parse_notification(stub.raw_notification(body_of(), headers=headers))


# -- refunds ------------------------------------------------------------------


def test_a_refund_success_notification_parses_exactly(gateway):
    plain = stub.refund_object()
    parsed = gateway.parse_refund_notification(stub.raw_notification(refund_body(plain)))
    assert parsed == RefundNotification(
        out_trade_no="SO20251122000123P01",
        out_refund_no="SO20251122000123R01",
        status=GatewayRefundStatus.SUCCEEDED,
        amount_minor=3000,
        total_minor=8800,
        gateway_refund_id="50300905362025112212345678901",
        dedupe_key="EV-REFUND-1",
        refunded_at=datetime(2025, 11, 22, 9, 59, 10, tzinfo=BEIJING),
        raw={**plain, "notification_id": "EV-REFUND-1", "event_type": "REFUND.SUCCESS"},
    )


@pytest.mark.parametrize(
    ("event_type", "refund_status", "expected"),
    [
        ("REFUND.ABNORMAL", "ABNORMAL", GatewayRefundStatus.ABNORMAL),
        ("REFUND.CLOSED", "CLOSED", GatewayRefundStatus.CLOSED),
        ("REFUND.CLOSED", "CLOSE", GatewayRefundStatus.CLOSED),
    ],
)
def test_refund_failures_map_to_their_status(gateway, event_type, refund_status, expected):
    plain = stub.refund_object(refund_status=refund_status)
    del plain["success_time"]
    parsed = gateway.parse_refund_notification(stub.raw_notification(refund_body(plain, event_type=event_type)))
    assert (parsed.status, parsed.refunded_at, parsed.amount_minor) == (expected, None, 3000)


@pytest.mark.parametrize(
    ("plain", "event_type", "reason"),
    [
        (stub.refund_object(mchid="1900000002"), "REFUND.SUCCESS", "mchid '1900000002' is not ours"),
        (stub.refund_object(), "TRANSACTION.SUCCESS", "not a refund event"),
        (stub.refund_object(refund_status="CLOSED"), "REFUND.SUCCESS", "contradicts"),
        (stub.refund_object(refund_status="PROCESSING"), "REFUND.SUCCESS", "unknown"),
        (stub.refund_object(refund_status=["SUCCESS"]), "REFUND.SUCCESS", "unknown"),
        (stub.refund_object(amount={"total": 8800, "refund": "30.00"}), "REFUND.SUCCESS", "amount.refund"),
        (stub.refund_object(amount={"total": -1, "refund": 3000}), "REFUND.SUCCESS", "amount.total"),
        (stub.refund_object(out_refund_no="R" * 65), "REFUND.SUCCESS", "out_refund_no"),
        (stub.refund_object(refund_id=None), "REFUND.SUCCESS", "refund_id"),
        (stub.refund_object(success_time=None), "REFUND.SUCCESS", "success_time"),
    ],
)
def test_bad_refund_notifications_are_invalid(gateway, plain, event_type, reason):
    with pytest.raises(InvalidNotification) as caught:
        gateway.parse_refund_notification(stub.raw_notification(refund_body(plain, event_type=event_type)))
    assert reason in caught.value.reason


def test_a_refund_notification_is_not_a_payment_notification(gateway):
    with pytest.raises(InvalidNotification, match="event_type 'REFUND.SUCCESS'"):
        gateway.parse_notification(stub.raw_notification(refund_body()))


def test_refund_notifications_are_verified_like_payments(gateway):
    with pytest.raises(InvalidNotification, match="more than 300 s"):
        gateway.parse_refund_notification(
            stub.raw_notification(refund_body(), received_at=stub.NOW - timedelta(minutes=6))
        )


# -- acknowledgements (§5.5) ------------------------------------------------------


def test_the_acknowledgement_is_a_200_with_the_official_body(gateway):
    assert gateway.acknowledge() == Acknowledgement(
        status=200, body='{"code":"SUCCESS","message":"成功"}'.encode(), content_type="application/json"
    )


def test_a_rejection_is_a_400_that_echoes_nothing(gateway):
    ack = gateway.reject("mchid '<script>' is not ours")
    assert ack == Acknowledgement(
        status=400, body='{"code":"FAIL","message":"失败"}'.encode(), content_type="application/json"
    )
    assert json.loads(ack.body) == {"code": "FAIL", "message": "失败"}
