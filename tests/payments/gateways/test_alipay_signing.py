"""Alipay RSA2 keys, request signing (A4) and answer verification (A5), cross-checked
against python-alipay-sdk, `openssl dgst` and a pinned known-good signature."""
from __future__ import annotations

import base64
import json
import subprocess
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alipay import AliPay
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from payments.exceptions import GatewayUnavailable, ResponseNotVerified
from payments.gateways.alipay import client
from payments.gateways.alipay.signing import (
    callback_signing_text,
    load_private_key,
    load_public_key,
    request_signing_text,
    sign,
    split_response,
    verify,
)
from payments.gateways.base import ActionKind, PaymentRequest, PayMethod
from tests.payments.gateways.alipay_support import FIXTURES, callback_signature, rsa_verifies

PUBLISHED_APP_KEY = FIXTURES / "app-private-key.pem"
PUBLISHED_APP_PUBLIC_KEY = FIXTURES / "app-public-key.pem"
PUBLISHED_ALIPAY_PUBLIC_KEY = FIXTURES / "alipay-public-key.pem"

# The A4 worked example's shape, signed once with the published TEST app key
# (also reproduced by `openssl dgst -sha256 -sign`), then pinned.
PINNED_TEXT = (
    'app_id=2021000122671080&biz_content={"out_trade_no":"20150320010101001","total_amount":"88.88",'
    '"subject":"Iphone6 16G","product_code":"FAST_INSTANT_TRADE_PAY"}&charset=utf-8'
    "&method=alipay.trade.page.pay&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0"
)
PINNED_SIGNATURE = (
    "FMieDDawDOgn4Zeagv2f+O98n2I+dyvlOWNHm3QJbdyrysRhxREK7rX+qMfwtzxwwYcL8Gt0laGREmrFz7oju6keKNYCSiu1A2EK"
    "ltpc7iqNtAkD4dfwgs2GYaQIOiyaeCk+NgqPURh98ve4UtRGf4941gl0/jyva93+ox0YUvYeFYUQPW4QhHZaO1ykJwuyzo5q/X6X"
    "RqHHNV+ZbKB5ejKjZxvBcguI96bOoGeQ3BfXNrTWJ9qE8SmRjlRR0M0KTB8kXsjS9LBfvLlXyoLLgmNO4Ly5UIqZb/U1Lbfk4tuV"
    "435u0qq8FWPcliO3SPfq9S3EJX5kcKrLAB30eugczg=="
)


def _published_app_key():
    return load_private_key(PUBLISHED_APP_KEY.read_bytes())


def _pem_body(pem: bytes) -> bytes:
    return b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))


# -- keys ---------------------------------------------------------------------


def test_pkcs1_and_pkcs8_private_keys_load_to_the_same_key():
    pkcs1 = PUBLISHED_APP_KEY.read_bytes()
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    key = load_private_key(pkcs1)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert pkcs8.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_private_key(pkcs8).private_numbers() == key.private_numbers()


def test_bare_base64_key_bodies_load_as_the_console_shows_them():
    key = _published_app_key()
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for body in (_pem_body(PUBLISHED_APP_KEY.read_bytes()), _pem_body(pkcs8)):
        assert load_private_key(body).private_numbers() == key.private_numbers()
    public = load_public_key(_pem_body(PUBLISHED_APP_PUBLIC_KEY.read_bytes()))
    assert public.public_numbers() == key.public_key().public_numbers()
    bare = (FIXTURES / "alipay-notify-public-key-bare.txt").read_bytes()
    assert not bare.startswith(b"-----")
    assert load_public_key(bare).key_size == 2048


def test_a_pem_without_final_newline_and_with_a_bom_loads():
    published = PUBLISHED_ALIPAY_PUBLIC_KEY.read_bytes()
    assert not published.endswith(b"\n")
    key = load_public_key(published)
    assert load_public_key(b"\xef\xbb\xbf" + published + b"\r\n").public_numbers() == key.public_numbers()


@pytest.mark.parametrize(
    "data",
    [b"", b"not a key at all!", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", b"QUJD"],
)
def test_garbage_is_not_a_key(data):
    with pytest.raises(ValueError):
        load_private_key(data)
    with pytest.raises(ValueError):
        load_public_key(data)


def test_wrong_kinds_of_keys_are_refused():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="not an RSA key"):
        load_private_key(ec_pem)
    encrypted = _published_app_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    with pytest.raises(ValueError):
        load_private_key(encrypted)
    with pytest.raises(ValueError):
        load_public_key(PUBLISHED_APP_KEY.read_bytes())


# -- the signed text ----------------------------------------------------------


def test_request_text_keeps_sign_type_drops_sign_and_empties_sorted_and_raw():
    params = {
        "sign": "xxx",
        "timestamp": "2024-05-01 10:03:04",
        "sign_type": "RSA2",
        "app_id": "1",
        "return_url": "",
        "biz_content": '{"subject":"茶 & 杯=2","total_amount":"1.00"}',
        "notify_url": "https://shop.test/n?a=1&b=2",
    }
    assert request_signing_text(params) == (
        'app_id=1&biz_content={"subject":"茶 & 杯=2","total_amount":"1.00"}'
        "&notify_url=https://shop.test/n?a=1&b=2&sign_type=RSA2&timestamp=2024-05-01 10:03:04"
    )


def test_callback_text_drops_sign_and_sign_type():
    fields = {"sign": "x", "sign_type": "RSA2", "b": "2", "a": "1", "c": ""}
    assert callback_signing_text(fields) == "a=1&b=2"


def test_pinned_signature_of_the_published_test_key():
    assert sign(_published_app_key(), PINNED_TEXT) == PINNED_SIGNATURE
    public = load_public_key(PUBLISHED_APP_PUBLIC_KEY.read_bytes())
    assert verify(public, PINNED_TEXT, PINNED_SIGNATURE)
    assert not verify(public, PINNED_TEXT.replace("88.88", "88.89"), PINNED_SIGNATURE)
    assert not verify(public, PINNED_TEXT, "not base64!")


def _page_params() -> dict[str, str]:
    return client.signed_params(
        app_id="2021000122671080",
        method="alipay.trade.page.pay",
        biz_content={
            "out_trade_no": "SO2024050100001_1",
            "total_amount": "88.88",
            "subject": "龙井茶 250g",
            "product_code": "FAST_INSTANT_TRADE_PAY",
            "time_expire": "2024-05-01 10:33:04",
        },
        private_key=_published_app_key(),
        now=datetime(2024, 5, 1, 2, 3, 4, tzinfo=UTC),
        extra={"notify_url": "https://shop.test/payments/alipay/notify/", "return_url": ""},
    )


def test_signed_params_follow_a4():
    params = _page_params()
    assert params["timestamp"] == "2024-05-01 10:03:04"  # Beijing time
    assert params["charset"] == "utf-8" and params["version"] == "1.0" and params["format"] == "JSON"
    assert params["sign_type"] == "RSA2"
    assert "return_url" not in params  # empty: never sent
    # Compact, not ASCII-escaped, serialised once.
    assert params["biz_content"].startswith('{"out_trade_no":"SO2024050100001_1","total_amount":"88.88","subject":"龙井茶')
    public = load_public_key(PUBLISHED_APP_PUBLIC_KEY.read_bytes())
    assert rsa_verifies(public, request_signing_text(params), params["sign"])


def test_openssl_signs_the_same_bytes_to_the_same_signature(tmp_path: Path):
    params = _page_params()
    message = tmp_path / "canonical.txt"
    message.write_bytes(request_signing_text(params).encode("utf-8"))
    result = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(PUBLISHED_APP_KEY), str(message)],
        check=True,
        capture_output=True,
    )
    assert base64.b64encode(result.stdout).decode() == params["sign"]


def _sdk(alipay_public_pem: str | None = None) -> AliPay:
    return AliPay(
        appid="2021000122671080",
        app_notify_url=None,
        app_private_key_string=PUBLISHED_APP_KEY.read_text(),
        alipay_public_key_string=alipay_public_pem or PUBLISHED_ALIPAY_PUBLIC_KEY.read_text(),
        sign_type="RSA2",
    )


def _sdk_sign(signed_string: str) -> str:
    # sign_data() appends `&sign=<quote_plus(sign)>` to the sorted pairs.
    return urllib.parse.unquote_plus(signed_string.rsplit("&sign=", 1)[1])


def test_python_alipay_sdk_signs_our_params_identically(alipay_gateway):
    action = alipay_gateway.start_payment(
        PaymentRequest(
            out_trade_no="SO2024050100001_1",
            amount_minor=8888,
            currency="CNY",
            subject="龙井茶 250g / 礼盒",
            method=PayMethod.PAGE,
            notify_url="https://shop.test/payments/alipay/notify/",
            return_url="https://shop.test/payments/alipay/return/",
            expires_at=datetime(2024, 5, 1, 2, 33, 4, tzinfo=UTC),
            description="明前 & 特级",
        )
    )
    assert action.kind == ActionKind.FORM
    unsigned = {name: value for name, value in action.form_fields.items() if name != "sign"}
    # biz_content goes in as our string: the SDK only re-serialises dicts.
    assert _sdk_sign(_sdk().sign_data(dict(unsigned))) == action.form_fields["sign"]


def test_our_signer_reproduces_the_sdk_own_request():
    sdk_string = _sdk().api_alipay_trade_page_pay(
        subject="龙井茶",
        out_trade_no="SO2024050100001_2",
        total_amount="0.01",
        return_url="https://shop.test/r",
        notify_url="https://shop.test/n",
    )
    pairs = urllib.parse.parse_qsl(sdk_string, keep_blank_values=True)
    params = dict(pairs)
    # The SDK escapes non-ASCII in biz_content; what matters is the string as sent.
    assert "\\u" in params["biz_content"]
    assert sign(_published_app_key(), request_signing_text(params)) == params["sign"]


def test_python_alipay_sdk_accepts_what_alipay_side_signing_produces(alipay_side_key):
    fields = {
        "app_id": "2021000122671080",
        "notify_type": "trade_status_sync",
        "out_trade_no": "SO1",
        "total_amount": "0.10",
        "fund_bill_list": '[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]',
        "subject": "茶 500g",
        "sign_type": "RSA2",
    }
    signature = callback_signature(fields, alipay_side_key)
    public_pem = alipay_side_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    assert _sdk(public_pem).verify(dict(fields), signature)
    assert verify(alipay_side_key.public_key(), callback_signing_text(fields), signature)


# -- answers --------------------------------------------------------------------


def test_split_response_keeps_the_raw_node_text():
    node = '{"code":"10000","qr_code":"https:\\/\\/qr.alipay.com\\/bax0","memo":"a}b{\\"c\\\\"}'
    text = '{ "sign" : "c2ln",\n "alipay_trade_precreate_response" :' + node + "\n}"
    envelope = split_response(text, "alipay.trade.precreate")
    assert envelope.node_text == node
    assert envelope.sign == "c2ln"
    assert envelope.node_name == "alipay_trade_precreate_response"
    assert json.loads(envelope.node_text)["memo"] == 'a}b{"c\\'


def test_split_response_falls_back_to_error_response():
    text = '{"error_response":{"code":"40002","sub_code":"isv.invalid-app-id"}}'
    envelope = split_response(text, "alipay.trade.query")
    assert envelope.node_name == "error_response" and envelope.sign == ""


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"alipay_trade_query_response":"encrypted"}',
        '{"other_response":{}}',
        '{"alipay_trade_query_response":{},"alipay_trade_query_response":{}}',
        '{"alipay_trade_query_response":{"a":"b"}',
        '{"alipay_trade_query_response":{}} trailing',
    ],
)
def test_split_response_refuses_what_is_not_an_answer(text):
    with pytest.raises(ValueError):
        split_response(text, "alipay.trade.query")


REAL_ANSWER = (FIXTURES / "real-file-upload-response.json").read_text("utf-8")


def test_a_real_alipay_answer_verifies_over_its_raw_node():
    public = load_public_key(PUBLISHED_ALIPAY_PUBLIC_KEY.read_bytes())
    node = client.verified_node(REAL_ANSWER, method="alipay.open.file.upload", public_key=public, reference="t")
    assert node == {"code": "10000", "msg": "Success", "file_id": "CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda text: text.replace("CAxAToWB1Js", "CAxAToWB1Jt"),
        # Same JSON, different bytes: re-serialised with spaces.
        lambda text: text.replace('"code":"10000","msg"', '"code": "10000", "msg"'),
    ],
)
def test_a_changed_real_answer_does_not_verify(tamper):
    public = load_public_key(PUBLISHED_ALIPAY_PUBLIC_KEY.read_bytes())
    with pytest.raises(ResponseNotVerified):
        client.verified_node(tamper(REAL_ANSWER), method="alipay.open.file.upload", public_key=public, reference="t")


def test_the_real_answer_does_not_verify_with_another_key():
    with pytest.raises(ResponseNotVerified):
        client.verified_node(
            REAL_ANSWER,
            method="alipay.open.file.upload",
            public_key=load_public_key(PUBLISHED_APP_PUBLIC_KEY.read_bytes()),
            reference="t",
        )


def test_an_unreadable_answer_is_an_unknown_outcome():
    public = load_public_key(PUBLISHED_ALIPAY_PUBLIC_KEY.read_bytes())
    with pytest.raises(GatewayUnavailable) as caught:
        client.verified_node("<html>502</html>", method="alipay.trade.query", public_key=public, reference="t")
    assert not isinstance(caught.value, ResponseNotVerified)
