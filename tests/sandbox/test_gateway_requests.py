"""/alipay/gateway.do: request verification, transports and signed answers (A2-A6)."""
import json
from datetime import timedelta

import pytest
import requests

from tests.sandbox.alipay_client import AlipayTestClient, beijing_now_text, node_text, rsa2_sign, signed_text

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]


def test_a_bad_merchant_signature_is_refused_with_isv_invalid_signature(alipay):
    params = alipay.signed_params("alipay.trade.query", {"out_trade_no": "X1"})
    params["biz_content"] = '{"out_trade_no":"X2"}'

    answer = alipay.answer("alipay.trade.query", alipay.send(params))

    assert answer.node_key == "alipay_trade_query_response"
    assert (answer.code, answer.sub_code) == ("40002", "isv.invalid-signature")
    # Like Alipay, the answer shows the text the gateway verified.
    assert 'biz_content={"out_trade_no":"X2"}' in answer.node["sub_msg"]


def test_a_request_signed_with_another_key_is_refused(alipay, sandbox, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    params = alipay.signed_params("alipay.trade.query", {"out_trade_no": "X1"})
    params["sign"] = rsa2_sign(signed_text(params, without=("sign",)), stranger)

    answer = alipay.answer("alipay.trade.query", alipay.send(params))

    assert answer.sub_code == "isv.invalid-signature"


def test_a_missing_signature_is_refused(alipay):
    params = alipay.signed_params("alipay.trade.query", {"out_trade_no": "X1"})
    del params["sign"]

    answer = alipay.answer("alipay.trade.query", alipay.send(params))

    assert (answer.code, answer.sub_code) == ("40002", "isv.invalid-signature")


def test_sign_type_is_part_of_the_signed_text(alipay):
    """A4: only `sign` is left out of a request's signed text."""
    params = alipay.signed_params("alipay.trade.query", {"out_trade_no": "X1"})
    unsigned_sign_type = {name: value for name, value in params.items() if name != "sign"}
    text_without_sign_type = signed_text(
        {name: value for name, value in unsigned_sign_type.items() if name != "sign_type"}, without=()
    )
    params["sign"] = rsa2_sign(text_without_sign_type, alipay.app_private_key)

    answer = alipay.answer("alipay.trade.query", alipay.send(params))

    assert answer.sub_code == "isv.invalid-signature"


def test_another_app_id_is_refused(sandbox):
    stranger = AlipayTestClient(sandbox.alipay_gateway_url, sandbox.keys_dir, app_id="2021000199999999")

    answer = stranger.call("alipay.trade.query", {"out_trade_no": "X1"})

    assert (answer.code, answer.sub_code) == ("40002", "isv.invalid-app-id")


# Explicit ids: a clock-made id differs between xdist workers that collect
# a second apart, and xdist refuses to run then.
@pytest.mark.parametrize(
    "timestamp",
    ["2024/01/01 10:00:00", "yesterday", beijing_now_text(timedelta(hours=-8))],
    ids=["slashes", "a word", "8 hours ago"],
)
def test_a_malformed_or_skewed_timestamp_is_refused(alipay, timestamp):
    answer = alipay.call("alipay.trade.query", {"out_trade_no": "X1"}, timestamp=timestamp)

    assert (answer.code, answer.sub_code) == ("40002", "isv.invalid-timestamp")


@pytest.mark.parametrize(
    ("missing", "sub_code"),
    [
        ("app_id", "isv.missing-app-id"),
        ("timestamp", "isv.missing-timestamp"),
        ("version", "isv.missing-version"),
        ("sign_type", "isv.missing-signature-type"),
        ("biz_content", "isv.missing-biz-content"),
    ],
)
def test_a_missing_common_argument_is_refused_with_40001(alipay, missing, sub_code):
    params = alipay.signed_params("alipay.trade.query", {"out_trade_no": "X1"})
    del params[missing]
    params["sign"] = rsa2_sign(signed_text(params, without=("sign",)), alipay.app_private_key)

    answer = alipay.answer("alipay.trade.query", alipay.send(params))

    assert (answer.code, answer.sub_code) == ("40001", sub_code)


def test_a_missing_business_argument_is_an_invalid_parameter(alipay):
    answer = alipay.call("alipay.trade.query", {})

    assert (answer.code, answer.sub_code) == ("40004", "ACQ.INVALID_PARAMETER")


def test_an_unknown_or_missing_method_answers_under_error_response(alipay):
    unknown = alipay.call("alipay.trade.teleport", {"out_trade_no": "X1"})
    missing = alipay.answer("alipay.trade.query", requests.post(alipay.gateway_url, data={}, timeout=10))

    assert (unknown.node_key, unknown.code, unknown.sub_code) == ("error_response", "40002", "isv.invalid-method")
    assert (missing.node_key, missing.code, missing.sub_code) == ("error_response", "40001", "isv.missing-method")


@pytest.mark.parametrize("transport", ["query", "form", "split"])
def test_parameters_may_travel_in_the_query_string_the_body_or_both(alipay, transport):
    answer = alipay.call("alipay.trade.query", {"out_trade_no": "NOPE"}, transport=transport)

    assert (answer.code, answer.sub_code) == ("40004", "ACQ.TRADE_NOT_EXIST")


def test_answers_escape_slashes_and_sign_the_exact_node_text(alipay, merchant, out_trade_no):
    """A5: the signature covers the raw node (with `\\/` and raw UTF-8), not a re-serialisation."""
    answer = alipay.call(
        "alipay.trade.precreate",
        {"out_trade_no": out_trade_no, "total_amount": "1.00", "subject": "茶"},
        notify_url=merchant.notify_url,
    )

    assert answer.code == "10000"
    assert "http:\\/\\/" in answer.node_text
    assert answer.node["qr_code"].startswith("http://")
    reserialised = json.dumps(answer.node, separators=(",", ":"), ensure_ascii=False)
    assert reserialised != answer.node_text
    assert node_text(answer.raw, "alipay_trade_precreate_response") == answer.node_text


def test_amounts_sent_as_json_numbers_are_read_exactly(alipay, merchant, out_trade_no, sandbox):
    params = alipay.signed_params("alipay.trade.precreate", None, notify_url=merchant.notify_url)
    del params["sign"]
    params["biz_content"] = f'{{"out_trade_no":"{out_trade_no}","total_amount":19.99,"subject":"tea"}}'
    params["sign"] = rsa2_sign(signed_text(params, without=("sign",)), alipay.app_private_key)

    answer = alipay.answer("alipay.trade.precreate", alipay.send(params))

    assert answer.code == "10000"
    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["amount_minor"] == 1999


def test_python_alipay_sdk_verifies_the_sandbox_answers(sdk, out_trade_no):
    """An independent client: it verifies the response signature itself and raises if it fails."""
    created = sdk.api_alipay_trade_precreate(subject="茶具 tea set", out_trade_no=out_trade_no, total_amount="12.30")
    queried = sdk.api_alipay_trade_query(out_trade_no=out_trade_no)

    assert created["code"] == "10000"
    assert created["qr_code"].endswith("/")
    assert (queried["code"], queried["sub_code"]) == ("40004", "ACQ.TRADE_NOT_EXIST")
