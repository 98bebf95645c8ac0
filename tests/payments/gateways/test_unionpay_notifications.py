"""UnionPay back notifications and front returns, read by the adapter
(docs/gateways-alipay-unionpay.md B6, B7, B10, B14)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payments.exceptions import InvalidNotification
from payments.gateways.base import GatewayRefundStatus, TradeStatus
from payments.gateways.unionpay.formats import BEIJING
from tests.payments.gateways.unionpay_support import (
    consume_fields,
    form_body,
    raw_notification,
    refund_fields,
)

ORDER_ID = "2024050112345678P01"
TXN_TIME = "20240501100005"
RECEIVED = datetime(2024, 5, 1, 2, 5, tzinfo=UTC)


def notification(fields, **kwargs):
    return raw_notification(fields, received_at=RECEIVED, **kwargs)


def test_a_verified_consume_notification_is_read(unionpay_gateway, unionpay_chain):
    parsed = unionpay_gateway.parse_notification(notification(unionpay_chain.unionpay.sign(
        consume_fields(ORDER_ID, TXN_TIME))))

    assert (parsed.out_trade_no, parsed.status, parsed.amount_minor) == (ORDER_ID, TradeStatus.SUCCEEDED, 8800)
    assert parsed.gateway_trade_no == "782405011003040674028"
    assert parsed.requested_at == datetime(2024, 5, 1, 10, 0, 5, tzinfo=BEIJING)
    assert parsed.dedupe_key == "01:782405011003040674028:00"
    assert parsed.paid_at == datetime(2024, 5, 1, 10, 0, 5, tzinfo=BEIJING)


def test_a_defective_success_counts_and_anything_else_is_left_to_the_query(unionpay_gateway, unionpay_chain):
    a6 = unionpay_gateway.parse_notification(notification(unionpay_chain.unionpay.sign(
        consume_fields(ORDER_ID, TXN_TIME, resp_code="A6"))))
    failed = unionpay_gateway.parse_notification(notification(unionpay_chain.unionpay.sign(
        consume_fields(ORDER_ID, TXN_TIME, resp_code="01"))))

    assert a6.status is TradeStatus.SUCCEEDED
    assert (failed.status, failed.paid_at) == (TradeStatus.PENDING, None)
    assert failed.dedupe_key != a6.dedupe_key


def forged_variants(chain):
    fields = consume_fields(ORDER_ID, TXN_TIME)
    signed = chain.unionpay.sign(fields)
    return {
        "forged signature": (chain.forged(fields), "does not verify"),
        "certificate outside the chain": (chain.impostor.sign(fields), "does not chain"),
        "wrong CN": (chain.wrong_cn.sign(fields), "not UnionPay"),
        "expired certificate": (chain.expired.sign(fields), "valid from"),
        "tampered amount": ({**signed, "txnAmt": "1"}, "does not verify"),
        "wrong merchant": (chain.unionpay.sign({**fields, "merId": "898110000009999"}), "merId"),
        "no certificate": ({name: value for name, value in signed.items() if name != "signPubKeyCert"},
                           "no signPubKeyCert"),
        "garbage certificate": ({**signed, "signPubKeyCert": "-----BEGIN CERTIFICATE-----\r\nAAAA"},
                                "not a PEM certificate"),
        "refund at the payment endpoint": (chain.unionpay.sign(refund_fields("2024050112345678R01", TXN_TIME)),
                                           "txnType"),
        "no queryId": (chain.unionpay.sign({name: value for name, value in fields.items() if name != "queryId"}),
                       "without queryId"),
        "amount not in fen": (chain.unionpay.sign({**fields, "txnAmt": "88.00"}), "not an amount"),
        "txnTime not a time": (chain.unionpay.sign({**fields, "txnTime": "2024-05-01"}), "txnTime"),
        "foreign currency": (chain.unionpay.sign({**fields, "currencyCode": "840"}), "currencyCode"),
    }


VARIANTS = [
    "forged signature", "certificate outside the chain", "wrong CN", "expired certificate", "tampered amount",
    "wrong merchant", "no certificate", "garbage certificate", "refund at the payment endpoint", "no queryId",
    "amount not in fen", "txnTime not a time", "foreign currency",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_hostile_or_malformed_notifications_are_refused(unionpay_gateway, unionpay_chain, variant):
    variants = forged_variants(unionpay_chain)
    assert sorted(variants) == sorted(VARIANTS)
    fields, reason = variants[variant]
    with pytest.raises(InvalidNotification, match=reason):
        unionpay_gateway.parse_notification(notification(fields))


@pytest.mark.parametrize("body, reason", [
    (b"", "empty"), (b"orderId=%ZZ&&signature", "not a form body"), ("订单=1".encode(), "not a form body"),
    (b"orderId=1&orderId=2", "twice"),
])
def test_bodies_that_are_not_one_clean_form_are_refused(unionpay_gateway, body, reason):
    with pytest.raises(InvalidNotification, match=reason):
        unionpay_gateway.parse_notification(notification({}, body=body))


def test_a_stored_notification_verifies_at_the_time_it_arrived(unionpay_gateway, unionpay_chain):
    """Replayed from the inbox years later, the certificate is judged as it was when it came."""
    fields = unionpay_chain.unionpay.sign(consume_fields(ORDER_ID, TXN_TIME))
    late = raw_notification(fields, received_at=datetime(2046, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidNotification, match="valid from"):
        unionpay_gateway.parse_notification(late)
    assert unionpay_gateway.parse_notification(notification(fields)).out_trade_no == ORDER_ID


def test_a_refund_notification_names_the_payment_by_origqryid(unionpay_gateway, unionpay_chain):
    fields = unionpay_chain.unionpay.sign(refund_fields("2024050112345678R01", "20240501100300"))

    parsed = unionpay_gateway.parse_refund_notification(notification(fields))

    assert (parsed.out_refund_no, parsed.status, parsed.amount_minor) == (
        "2024050112345678R01", GatewayRefundStatus.SUCCEEDED, 3000)
    assert (parsed.out_trade_no, parsed.gateway_trade_no) == ("", "782405011003040674028")
    assert parsed.gateway_refund_id == "782405011004050000001"
    assert parsed.requested_at == datetime(2024, 5, 1, 10, 3, tzinfo=BEIJING)
    assert parsed.dedupe_key == "04:782405011004050000001:00"


def test_a_refund_notification_that_is_no_success_is_left_to_the_query(unionpay_gateway, unionpay_chain):
    fields = unionpay_chain.unionpay.sign(refund_fields("2024050112345678R01", "20240501100300", resp_code="01"))
    assert unionpay_gateway.parse_refund_notification(notification(fields)).status is GatewayRefundStatus.PROCESSING


def test_a_payment_notification_at_the_refund_endpoint_is_refused(unionpay_gateway, unionpay_chain):
    fields = unionpay_chain.unionpay.sign(consume_fields(ORDER_ID, TXN_TIME))
    with pytest.raises(InvalidNotification, match="txnType"):
        unionpay_gateway.parse_refund_notification(notification(fields))


def test_the_front_return_is_verified_and_names_the_order(unionpay_gateway, unionpay_chain):
    fields = unionpay_chain.unionpay.sign(consume_fields(ORDER_ID, TXN_TIME))
    assert unionpay_gateway.parse_return(fields) == ORDER_ID
    with pytest.raises(InvalidNotification, match="does not chain"):
        unionpay_gateway.parse_return(unionpay_chain.impostor.sign(consume_fields(ORDER_ID, TXN_TIME)))
    with pytest.raises(InvalidNotification, match="merId"):
        unionpay_gateway.parse_return(unionpay_chain.unionpay.sign(
            consume_fields(ORDER_ID, TXN_TIME, mer_id="898110000009999")))


def test_form_encoding_round_trips_the_certificate_line_breaks(unionpay_gateway, unionpay_chain):
    fields = unionpay_chain.unionpay.sign(consume_fields(ORDER_ID, TXN_TIME))
    assert b"%0D%0A" in form_body(fields)
    assert unionpay_gateway.parse_notification(notification(fields)).amount_minor == 8800


def test_acknowledgement_is_http_200_and_a_refusal_is_not(unionpay_gateway):
    assert (unionpay_gateway.acknowledge().status, unionpay_gateway.acknowledge().body) == (200, b"ok")
    assert unionpay_gateway.reject("whatever").status == 400
