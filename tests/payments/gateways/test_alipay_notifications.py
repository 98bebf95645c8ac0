"""Alipay notifications (A8), the browser return (A9) and the merchant's checks (A13)."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from payments.exceptions import InvalidNotification
from payments.gateways.base import RawNotification, TradeStatus
from tests.payments.gateways.alipay_support import (
    APP_ID,
    FIXTURES,
    SELLER_ID,
    callback_signature,
    form_body,
)

RECEIVED_AT = datetime(2024, 5, 1, 2, 5, 7, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded; charset=utf-8"


def fields_of(**changes: str) -> dict[str, str]:
    fields = {
        "gmt_create": "2024-05-01 10:04:01",
        "charset": "utf-8",
        "seller_email": "shop@example.test",
        "subject": "龙井茶 250g + 杯 100%",
        "buyer_id": "2088102534368455",
        "invoice_amount": "88.88",
        "notify_id": "2024050100222100506000000000000001",
        "fund_bill_list": '[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]',
        "notify_type": "trade_status_sync",
        "trade_status": "TRADE_SUCCESS",
        "receipt_amount": "88.88",
        "buyer_pay_amount": "88.88",
        "sign_type": "RSA2",
        "app_id": APP_ID,
        "seller_id": SELLER_ID,
        "gmt_payment": "2024-05-01 10:05:06",
        "notify_time": "2024-05-01 10:05:07",
        "version": "1.0",
        "out_trade_no": "SO2024050100001_1",
        "total_amount": "88.88",
        "trade_no": "2024050122001400001234567890",
        "auth_app_id": APP_ID,
        "buyer_logon_id": "abc***@example.com",
        "point_amount": "0.00",
        "passback_params": "",
    }
    fields.update(changes)
    return fields


def signed(fields: dict[str, str], key, **options) -> dict[str, str]:
    return {**fields, "sign": callback_signature(fields, key, **options)}


def raw(fields: dict[str, str], charset: str = "utf-8", content_type: str = FORM) -> RawNotification:
    return RawNotification(
        body=form_body(fields, charset), headers={"Content-Type": content_type}, received_at=RECEIVED_AT,
        content_type=content_type,
    )


# -- payment notifications -----------------------------------------------------------


def test_a_paid_notification(alipay_gateway, alipay_side_key):
    fields = signed(fields_of(), alipay_side_key)
    notification = alipay_gateway.parse_notification(raw(fields))
    assert notification.status == TradeStatus.SUCCEEDED
    assert notification.out_trade_no == "SO2024050100001_1"
    assert notification.amount_minor == 8888
    assert notification.gateway_trade_no == "2024050122001400001234567890"
    assert notification.dedupe_key == "2024050100222100506000000000000001"
    assert notification.paid_at == datetime(2024, 5, 1, 2, 5, 6, tzinfo=UTC)
    assert "refund_fee" not in notification.raw and "out_biz_no" not in notification.raw
    assert notification.raw == fields  # decoded values, "+" and "%" included
    assert notification.raw["subject"] == "龙井茶 250g + 杯 100%"


def test_a_duplicate_notification_has_the_same_dedupe_key(alipay_gateway, alipay_side_key):
    fields = signed(fields_of(), alipay_side_key)
    first = alipay_gateway.parse_notification(raw(fields))
    again = alipay_gateway.parse_notification(raw(fields))
    assert first.dedupe_key == again.dedupe_key


def test_without_notify_id_the_dedupe_key_is_trade_status_and_refund(alipay_gateway, alipay_side_key):
    fields = signed(fields_of(notify_id="", refund_fee="20.00", gmt_refund="2024-05-02 09:00:00.123",
                              out_biz_no="RF1"), alipay_side_key)
    notification = alipay_gateway.parse_notification(raw(fields))
    assert notification.dedupe_key == "2024050122001400001234567890:TRADE_SUCCESS:20.00"


def test_a_partial_refund_notification_is_still_paid_with_the_refunded_total(alipay_gateway, alipay_side_key):
    fields = signed(
        fields_of(refund_fee="20.00", gmt_refund="2024-05-02 09:00:00.123", out_biz_no="RF2024050200001"),
        alipay_side_key,
    )
    notification = alipay_gateway.parse_notification(raw(fields))
    assert notification.status == TradeStatus.SUCCEEDED
    assert notification.raw["refund_fee"] == "20.00"
    assert notification.raw["out_biz_no"] == "RF2024050200001"


def test_a_refund_that_empties_the_trade_is_not_a_close(alipay_gateway, alipay_side_key):
    fields = signed(
        fields_of(trade_status="TRADE_CLOSED", refund_fee="88.88", gmt_refund="2024-05-02 09:00:00.123",
                  gmt_close="2024-05-02 09:00:00", out_biz_no="RF2024050200002"),
        alipay_side_key,
    )
    notification = alipay_gateway.parse_notification(raw(fields))
    assert notification.status == TradeStatus.SUCCEEDED
    assert (notification.raw["refund_fee"], notification.raw["out_biz_no"]) == ("88.88", "RF2024050200002")


def test_a_close_without_refund_fields_is_closed(alipay_gateway, alipay_side_key):
    fields = fields_of(trade_status="TRADE_CLOSED", gmt_close="2024-05-01 10:33:04", gmt_payment="",
                       receipt_amount="0.00", buyer_pay_amount="0.00")
    notification = alipay_gateway.parse_notification(raw(signed(fields, alipay_side_key)))
    assert notification.status == TradeStatus.CLOSED
    assert notification.paid_at is None


def test_finished_and_waiting_statuses(alipay_gateway, alipay_side_key):
    finished = alipay_gateway.parse_notification(raw(signed(fields_of(trade_status="TRADE_FINISHED"), alipay_side_key)))
    assert finished.status == TradeStatus.SUCCEEDED
    waiting = alipay_gateway.parse_notification(
        raw(signed(fields_of(trade_status="WAIT_BUYER_PAY", gmt_payment=""), alipay_side_key))
    )
    assert waiting.status == TradeStatus.PENDING


def test_a_gbk_notification_is_decoded_in_its_charset(alipay_gateway, alipay_side_key):
    fields = signed(fields_of(charset="gbk"), alipay_side_key)
    notification = alipay_gateway.parse_notification(raw(fields, charset="gbk", content_type="application/x-www-form-urlencoded"))
    assert notification.raw["subject"] == "龙井茶 250g + 杯 100%"


def test_the_content_type_charset_is_used_when_the_body_names_none(alipay_gateway, alipay_side_key):
    fields = signed(fields_of(charset=""), alipay_side_key)
    del fields["charset"]
    notification = alipay_gateway.parse_notification(
        raw(fields, charset="gbk", content_type="application/x-www-form-urlencoded; charset=GBK")
    )
    assert notification.amount_minor == 8888


def test_without_a_seller_id_option_any_seller_passes(make_alipay_gateway, alipay_side_key):
    gateway = make_alipay_gateway(seller_id="")
    fields = signed(fields_of(seller_id="2088999999999999"), alipay_side_key)
    assert gateway.parse_notification(raw(fields)).amount_minor == 8888


# -- a real notification signed by Alipay --------------------------------------------


def _real_fields() -> dict[str, str]:
    return json.loads((FIXTURES / "real-trade-notification.json").read_text("utf-8"))


@pytest.fixture
def real_gateway(make_alipay_gateway):
    return make_alipay_gateway(
        app_id="2019073166072302",
        seller_id="2088531891668739",
        alipay_public_key_path=str(FIXTURES / "alipay-notify-public-key-bare.txt"),
    )


def test_a_real_alipay_notification_verifies(real_gateway):
    notification = real_gateway.parse_notification(raw(_real_fields()))
    assert notification.status == TradeStatus.SUCCEEDED
    assert notification.out_trade_no == "20190815155618536-564-57"
    assert notification.amount_minor == 10
    assert notification.dedupe_key == "2019081500222155624068450559358070"
    assert notification.paid_at == datetime(2019, 8, 15, 7, 56, 24, tzinfo=UTC)


@pytest.mark.parametrize(
    "change",
    [
        {"total_amount": "0.11"},
        # Same JSON, re-serialised with spaces: the signed bytes differ.
        {"fund_bill_list": '[{"amount": "0.10", "fundChannel": "ALIPAYACCOUNT"}]'},
        {"sign": ""},
        {"sign_type": "RSA"},
    ],
)
def test_a_changed_real_notification_is_refused(real_gateway, change):
    with pytest.raises(InvalidNotification):
        real_gateway.parse_notification(raw({**_real_fields(), **change}))


# -- refused notifications -------------------------------------------------------------


def test_tampered_field_is_refused(alipay_gateway, alipay_side_key):
    fields = signed(fields_of(), alipay_side_key)
    with pytest.raises(InvalidNotification, match="does not verify"):
        alipay_gateway.parse_notification(raw({**fields, "total_amount": "0.01"}))


def test_wrong_key_is_refused(alipay_gateway, stranger_key):
    with pytest.raises(InvalidNotification, match="does not verify"):
        alipay_gateway.parse_notification(raw(signed(fields_of(), stranger_key)))


def test_missing_sign_is_refused(alipay_gateway):
    with pytest.raises(InvalidNotification, match="no sign"):
        alipay_gateway.parse_notification(raw(fields_of()))


def test_a_signature_that_covers_sign_type_is_refused(alipay_gateway, alipay_side_key):
    """Trade notifications are checked the rsaCheckV1 way: sign_type is not signed."""
    with pytest.raises(InvalidNotification, match="does not verify"):
        alipay_gateway.parse_notification(raw(signed(fields_of(), alipay_side_key, keep_sign_type=True)))


def test_reserialised_json_field_is_refused(alipay_gateway, alipay_side_key):
    fields = signed(fields_of(), alipay_side_key)
    spaced = json.dumps(json.loads(fields["fund_bill_list"]))
    with pytest.raises(InvalidNotification):
        alipay_gateway.parse_notification(raw({**fields, "fund_bill_list": spaced}))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"app_id": "2021000000000000"}, "app_id"),
        ({"seller_id": "2088000000000000"}, "seller_id"),
        ({"notify_type": "servicemarket_order_notify"}, "notify_type"),
        ({"total_amount": "88.888"}, "total_amount"),
        ({"total_amount": "-88.88"}, "total_amount"),
        ({"refund_fee": "abc"}, "refund_fee"),
        ({"out_trade_no": ""}, "out_trade_no"),
        ({"trade_status": "TRADE_PENDING"}, "trade_status"),
        ({"gmt_payment": "yesterday"}, "gmt_payment"),
    ],
)
def test_properly_signed_but_unacceptable_notifications_are_refused(alipay_gateway, alipay_side_key, change, reason):
    with pytest.raises(InvalidNotification, match=reason):
        alipay_gateway.parse_notification(raw(signed(fields_of(**change), alipay_side_key)))


@pytest.mark.parametrize(
    "body",
    [b"", b"{\"out_trade_no\": 1}", b"subject=%FF%FE&charset=utf-8", b"a=1&a=2", b"charset=big5&a=1"],
)
def test_unparseable_bodies_are_refused(alipay_gateway, body):
    with pytest.raises(InvalidNotification):
        alipay_gateway.parse_notification(RawNotification(body=body, headers={}, received_at=RECEIVED_AT))


def test_a_field_sent_twice_is_refused_even_if_one_copy_is_signed(alipay_gateway, alipay_side_key):
    body = form_body(signed(fields_of(), alipay_side_key)) + b"&total_amount=0.01"
    with pytest.raises(InvalidNotification, match="twice"):
        alipay_gateway.parse_notification(RawNotification(body=body, headers={}, received_at=RECEIVED_AT))


def test_acknowledgements(alipay_gateway):
    ack = alipay_gateway.acknowledge()
    assert (ack.status, ack.body) == (200, b"success")
    nack = alipay_gateway.reject("the signature does not verify")
    assert nack.status == 400 and nack.body == b"failure"


# -- the browser return ----------------------------------------------------------------


def return_params(**changes: str) -> dict[str, str]:
    params = {
        "charset": "utf-8",
        "out_trade_no": "SO2024050100001_1",
        "method": "alipay.trade.page.pay.return",
        "total_amount": "88.88",
        "trade_no": "2024050122001400001234567890",
        "auth_app_id": APP_ID,
        "version": "1.0",
        "app_id": APP_ID,
        "sign_type": "RSA2",
        "seller_id": SELLER_ID,
        "timestamp": "2024-05-01 10:05:09",
    }
    params.update(changes)
    return params


def test_a_signed_return_names_its_trade(alipay_gateway, alipay_side_key):
    assert alipay_gateway.parse_return(signed(return_params(), alipay_side_key)) == "SO2024050100001_1"


@pytest.mark.parametrize(
    "forge",
    [
        lambda params, key, stranger: {**signed(params, key), "total_amount": "0.01"},
        lambda params, key, stranger: signed(params, stranger),
        lambda params, key, stranger: params,
        lambda params, key, stranger: signed({**params, "app_id": "2021000000000000"}, key),
        lambda params, key, stranger: signed({**params, "seller_id": "2088000000000000"}, key),
        lambda params, key, stranger: signed({**params, "out_trade_no": ""}, key),
    ],
)
def test_forged_or_foreign_returns_are_refused(alipay_gateway, alipay_side_key, stranger_key, forge):
    with pytest.raises(InvalidNotification):
        alipay_gateway.parse_return(forge(return_params(), alipay_side_key, stranger_key))
