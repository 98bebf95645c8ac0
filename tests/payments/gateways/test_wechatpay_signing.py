"""WeChat Pay v3 request signatures, answer verification and AES-GCM resources (§3, §4, §5.2).

Our signatures are cross-checked against `openssl dgst -sha256 -sign` run on
the exact five-line message, and pinned for fixed inputs; answers are
signed by the independent stub in fixtures/wechatpay/stub.py.
"""
from __future__ import annotations

import base64
import json
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import responses
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from payments.exceptions import GatewayUnavailable, ResponseNotVerified
from payments.gateways.wechatpay import signing
from payments.gateways.wechatpay.client import ApiClient, path_segment
from tests.gateway_references import trade_ref
from tests.payments.gateways.fixtures.wechatpay import stub

PINNED_POST_AUTHORIZATION = (
    'WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
    'signature="O6sgRry8DarMtOehvelZjTW1eiSFVJS+xIjj2FbAxpxQ/cP+3ajkD96lggopwAo78m/kjx9wz8RWFmw4lJwRy4dZrf2SRRBnv8'
    "EMKdi1wcmfK40aLRwNBedinec6XGpcMrQDbEYM93jQFDidOxe9G2ye9L+UoeHafGIa4+FG0iLfe2kikA6Py8J5tvSXhNwRuAtkTkUNPV+0Sk"
    "entF9ePmB0IkdVfxQfKAdfFYQJGN/xMtkaryblj+wnt1MNS87gDANvs1AOOVJQRo9BgogY6DkrPN7I0BEXfKoWR2E0NZb7w2UGGex0VR+n69"
    'IONrv2CjPHHuDhc6YTctQ1fuJhkg==",timestamp="1763776800",serial_no="3775B6A45ACD588826D15E583A95F5DD00000001"'
)
PINNED_GET_AUTHORIZATION = (
    'WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
    'signature="A4dtjrEOUgAmo2+Bld6YAIaTzFU7+MXD9S1dfj2MGhoWWRSez7FJjsB4HUoZqT+NTvNaHZ/iboX4qlqnMFVCrbrYY+LIB3J9nO'
    "BS5RMsBwmC3aZKuIPUt9d6ypCW25zH8EGRlSqDfkXAzfIHlsjEGZqUfDCfQdqRsk9PBLFWoh3gORCYmdNv6tjgCckAhhxOaiw+w9BptsUz6Y"
    "03BnZYHX2R3Z31cPoeJ/70ORpunrD1mTW6Kolky2JpabAnbRAgEh02uJIeNSzYdYG1o5WIPH3G/DTAfOXVYibYnjDTG6T6NctToKZv0h0I5aSw"
    'aigJNHNaKeazjPlo7DK/7VesjA==",timestamp="1763776800",serial_no="3775B6A45ACD588826D15E583A95F5DD00000001"'
)
PINNED_PAYLOAD = {
    "appid": "wx8888888888888888",
    "mchid": "1900000001",
    "description": "茶叶 Tea",
    "out_trade_no": "SO20251122000123P01",
    "notify_url": "https://shop.example/payments/wechatpay/notify/",
    "amount": {"total": 8800, "currency": "CNY"},
}

# AES-256-GCM computed once with `cryptography`: key API_V3_KEY, nonce
# "fdasflkja484", associated data "transaction".
PINNED_PLAINTEXT = b'{"out_trade_no":"SO20251122000123P01","trade_state":"SUCCESS"}'
PINNED_CIPHERTEXT = (
    "nD4GPAl5ABbTngfg8SWG2uYAI5aOPjgK4PC5FC+nwXmFo6UPfBNhzHxRTbTl8QcmwOKnOgc8nwYs16cjmxB+UMXpMph+iX8evd/AIQqX"
)
KEY = stub.API_V3_KEY.encode()


@pytest.fixture
def wechat():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield stub.WechatStub(mock)


def client(*, api_base: str = stub.API_BASE, now=stub.NOW) -> ApiClient:
    return ApiClient(
        session=requests.Session(),
        timeout=(3.0, 7.0),
        api_base=api_base,
        mchid=stub.MCHID,
        serial_no=stub.SERIAL_NO,
        private_key=signing.load_private_key(stub.MERCHANT_PRIVATE_KEY.read_bytes()),
        public_key=signing.load_public_key(stub.PLATFORM_PUBLIC_KEY.read_bytes()),
        public_key_id=stub.PUBLIC_KEY_ID,
        clock=lambda: now,
        nonce=lambda: stub.REQUEST_NONCE,
    )


PATH = "/v3/refund/domestic/refunds/R1"


def openssl_signature(message: bytes, tmp_path: Path) -> str:
    """An independent SHA256withRSA signature: openssl over the exact message bytes."""
    message_file = tmp_path / "message.txt"
    message_file.write_bytes(message)
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(stub.MERCHANT_PRIVATE_KEY), str(message_file)],
        check=True,
        capture_output=True,
    ).stdout
    return base64.b64encode(signature).decode("ascii")


# -- request signatures (§3) --------------------------------------------------


def test_post_authorization_header_matches_openssl_byte_for_byte(wechat, tmp_path):
    """The header's signature is openssl's over METHOD, path+query, ts, nonce, exact body."""
    wechat.reply("POST", "/v3/pay/transactions/native", {"code_url": "weixin://wxpay/bizpayurl?pr=abc"})
    stub.make_gateway().start_payment(stub.payment_request(subject="茶叶 Tea, 2 × 50g"))
    sent = wechat.requests[0]
    expected_message = (
        b"POST\n/wechatpay/v3/pay/transactions/native\n1763776800\n593BEC0C930BF1AFEB40B4A08C8FB242\n"
        + sent.body
        + b"\n"
    )
    assert stub.signed_message_of(sent) == expected_message
    assert "茶叶 Tea, 2 × 50g".encode() in sent.body  # ensure_ascii=False: UTF-8, not \u escapes
    compact = json.dumps(json.loads(sent.body), ensure_ascii=False, separators=(",", ":")).encode()
    assert sent.body == compact
    expected = (
        f'WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
        f'signature="{openssl_signature(expected_message, tmp_path)}",timestamp="1763776800",'
        f'serial_no="3775B6A45ACD588826D15E583A95F5DD00000001"'
    )
    assert sent.headers["Authorization"] == expected
    assert stub.merchant_signature_verifies(sent)


def test_pinned_post_header_with_query_and_body(wechat):
    """A fixed key, timestamp, nonce, method, path with query and body give one exact header."""
    wechat.reply("POST", "/v3/pay/transactions/native", {"code_url": "weixin://x"})
    client().call("POST", "/v3/pay/transactions/native", query={"trace": "a/b"}, payload=PINNED_PAYLOAD,
                  reference="pin")
    sent = wechat.requests[0]
    assert sent.path_url == "/wechatpay/v3/pay/transactions/native?trace=a%2Fb"
    assert sent.headers["Authorization"] == PINNED_POST_AUTHORIZATION


def test_pinned_get_header_against_the_real_api_base():
    """Against the real base (no prefix) the signed path starts /v3/; the query is signed."""
    with responses.RequestsMock() as mock:
        wechat = stub.WechatStub(mock)
        path = "/v3/pay/transactions/out-trade-no/SO20251122000123P01"
        wechat.reply("GET", path, {"trade_state": "NOTPAY"}, base="https://api.mch.weixin.qq.com")
        client(api_base="https://api.mch.weixin.qq.com/").call("GET", path, query={"mchid": stub.MCHID},
                                                                reference="pin")
        sent = wechat.requests[0]
    assert sent.path_url == "/v3/pay/transactions/out-trade-no/SO20251122000123P01?mchid=1900000001"
    assert sent.headers["Authorization"] == PINNED_GET_AUTHORIZATION


def test_get_with_query_is_signed_over_the_prefixed_path_and_query(wechat, tmp_path):
    """docs/CONTRACT.md: with the sandbox base the signed path starts /wechatpay/v3/ and keeps ?mchid=."""
    path = "/v3/pay/transactions/out-trade-no/SO20251122000123P01"
    wechat.reply("GET", path, stub.transaction(trade_state="NOTPAY", success_time=None, transaction_id=None))
    stub.make_gateway().query_payment(trade_ref("SO20251122000123P01"))
    sent = wechat.requests[0]
    message = (
        b"GET\n/wechatpay/v3/pay/transactions/out-trade-no/SO20251122000123P01?mchid=1900000001\n"
        b"1763776800\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
    )
    assert sent.body is None
    assert stub.signed_message_of(sent) == message
    assert stub.authorization_parts(sent)["signature"] == openssl_signature(message, tmp_path)


def test_every_call_sends_the_v3_headers_and_the_timeout(wechat):
    wechat.reply("POST", "/v3/pay/transactions/native", {"code_url": "weixin://x"})
    wechat.reply("GET", "/v3/refund/domestic/refunds/R1", {"out_refund_no": "R1"})
    c = client()
    c.call("POST", "/v3/pay/transactions/native", payload={"a": 1}, reference="x")
    c.call("GET", "/v3/refund/domestic/refunds/R1", reference="x")
    post, get = wechat.requests
    for sent in (post, get):
        assert sent.headers["Accept"] == "application/json"
        assert sent.headers["Wechatpay-Serial"] == stub.PUBLIC_KEY_ID
        assert sent.headers["User-Agent"].startswith("django-shop-wechatpay/")
    assert post.headers["Content-Type"] == "application/json"
    assert "Content-Type" not in get.headers
    assert post.body == b'{"a":1}'
    assert [call.request.req_kwargs["timeout"] for call in wechat.mock.calls] == [(3.0, 7.0), (3.0, 7.0)]


def test_redirects_are_not_followed(wechat):
    """A signed call answered elsewhere is no answer: the outcome is unknown."""
    wechat.mock.add("GET", f"{stub.API_BASE}{PATH}", status=302, headers={"Location": "https://elsewhere.test/"})
    with pytest.raises(GatewayUnavailable, match="302"):
        client().call("GET", PATH, reference="x")
    assert len(wechat.requests) == 1


def test_path_parameters_are_signed_as_sent():
    """An out_refund_no with '|', '*', '@' is percent-encoded once, and signed the same way."""
    number = "R-1|2*3@4"
    path = "/v3/refund/domestic/refunds/R-1%7C2%2A3%404"
    with responses.RequestsMock() as mock:
        wechat = stub.WechatStub(mock)
        wechat.reply("GET", path, {"out_refund_no": number})
        client().call("GET", "/v3/refund/domestic/refunds/" + path_segment(number), reference="x")
        sent = wechat.requests[0]
    assert sent.path_url == "/wechatpay" + path
    assert stub.merchant_signature_verifies(sent)


def test_nonces_are_32_upper_case_hex_and_fresh():
    first, second = signing.new_nonce(), signing.new_nonce()
    assert re.fullmatch(r"[0-9A-F]{32}", first)
    assert first != second


def test_request_message_has_five_lines_each_ending_in_lf():
    message = signing.request_message("get", "/v3/x?a=1", "1", "N", b"")
    assert message == b"GET\n/v3/x?a=1\n1\nN\n\n"


# -- answer verification (§4) -------------------------------------------------

def test_a_verified_answer_is_read(wechat):
    wechat.reply("GET", PATH, {"out_refund_no": "R1", "status": "SUCCESS"})
    answer = client().call("GET", PATH, reference="x")
    assert answer.status == 200
    assert answer.data == {"out_refund_no": "R1", "status": "SUCCESS"}


def test_a_204_with_a_valid_signature_over_the_empty_body_passes(wechat):
    wechat.reply("POST", "/v3/pay/transactions/out-trade-no/SO1234/close", status=204)
    answer = client().call("POST", "/v3/pay/transactions/out-trade-no/SO1234/close", payload={"mchid": "1"},
                           reference="x")
    assert (answer.status, answer.data) == (204, {})


def test_a_204_signed_over_another_body_is_refused(wechat):
    headers = stub.signed_headers(b"{}")
    wechat.mock.add("POST", f"{stub.API_BASE}/v3/close", body=b"", status=204, headers=headers)
    with pytest.raises(ResponseNotVerified, match="does not verify"):
        client().call("POST", "/v3/close", payload={"mchid": "1"}, reference="x")


def test_a_tampered_body_is_refused(wechat):
    signed = stub.json_bytes({"out_refund_no": "R1", "amount": {"refund": 1}})
    tampered = signed.replace(b'"refund": 1', b'"refund": 100')
    wechat.mock.add("GET", f"{stub.API_BASE}{PATH}", body=tampered, headers=stub.signed_headers(signed))
    with pytest.raises(ResponseNotVerified, match="does not verify"):
        client().call("GET", PATH, reference="x")


def test_an_answer_reserialised_by_a_proxy_is_refused(wechat):
    """§4.2: the signature covers the raw bytes; one added space breaks it."""
    signed = b'{"a":1}'
    wechat.mock.add("GET", f"{stub.API_BASE}{PATH}", body=b'{"a": 1}', headers=stub.signed_headers(signed))
    with pytest.raises(ResponseNotVerified):
        client().call("GET", PATH, reference="x")


@pytest.mark.parametrize(
    ("signing_kwargs", "reason"),
    [
        ({"serial": "PUB_KEY_ID_0119000000002025112200000000000002"}, "unknown Wechatpay-Serial"),
        ({"serial": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"}, "unknown Wechatpay-Serial"),
        ({"key": "stranger"}, "does not verify"),
        ({"signature": "WECHATPAY/SIGNTEST/" + "A" * 324}, "does not verify"),
        ({"signature": "not base64 at all!"}, "does not verify"),
        ({"timestamp": str(int(stub.TS) - 300)}, "more than 300 s"),
        ({"timestamp": str(int(stub.TS) + 300)}, "more than 300 s"),
        ({"timestamp": "1763776800000"}, "not Unix seconds"),
        ({"timestamp": "17637768OO"}, "not Unix seconds"),
        ({"signature_type": "WECHATPAY2-SM2-WITH-SM3"}, "Signature-Type"),
        ({"drop": ("Wechatpay-Timestamp",)}, "missing header Wechatpay-Timestamp"),
        ({"drop": ("Wechatpay-Nonce",)}, "missing header Wechatpay-Nonce"),
        ({"drop": ("Wechatpay-Signature",)}, "missing header Wechatpay-Signature"),
        ({"drop": ("Wechatpay-Serial",)}, "missing header Wechatpay-Serial"),
    ],
)
def test_unverifiable_answers_are_refused(wechat, signing_kwargs, reason):
    if signing_kwargs.get("key") == "stranger":
        signing_kwargs = {**signing_kwargs, "key": stub.stranger_key()}
    wechat.reply("GET", PATH, {"out_refund_no": "R1"}, **signing_kwargs)
    with pytest.raises(ResponseNotVerified, match=reason):
        client().call("GET", PATH, reference="x")


@pytest.mark.parametrize("skew", [-299, 0, 299])
def test_answers_within_five_minutes_pass(wechat, skew):
    wechat.reply("GET", PATH, {"ok": True}, timestamp=str(int(stub.TS) + skew))
    assert client().call("GET", PATH, reference="x").data == {"ok": True}


def test_a_missing_signature_type_is_accepted(wechat):
    wechat.reply("GET", PATH, {"ok": True}, signature_type=None)
    assert client().call("GET", PATH, reference="x").data == {"ok": True}


def test_header_names_are_case_insensitive(wechat):
    body = b'{"ok":true}'
    headers = {name.upper(): value for name, value in stub.signed_headers(body).items()}
    wechat.mock.add("GET", f"{stub.API_BASE}{PATH}", body=body, headers=headers)
    assert client().call("GET", PATH, reference="x").data == {"ok": True}


# -- AES-256-GCM resources (§5.2) ---------------------------------------------


def resource(ciphertext: str, **overrides: str) -> dict[str, str]:
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": ciphertext,
        "nonce": "fdasflkja484",
        "associated_data": "transaction",
        **overrides,
    }


def test_the_pinned_ciphertext_decrypts_to_its_plaintext():
    assert signing.decrypt_resource(KEY, resource(PINNED_CIPHERTEXT)) == PINNED_PLAINTEXT


def test_a_resource_encrypted_here_with_aesgcm_decrypts():
    plaintext = '{"out_refund_no":"R1","refund_status":"SUCCESS","note":"退款"}'.encode()
    sealed = AESGCM(KEY).encrypt(b"0123456789ab", plaintext, b"refund")
    found = signing.decrypt_resource(
        KEY, resource(base64.b64encode(sealed).decode(), nonce="0123456789ab", associated_data="refund")
    )
    assert found == plaintext


def test_empty_or_absent_associated_data_is_the_empty_aad():
    sealed = base64.b64encode(AESGCM(KEY).encrypt(b"0123456789ab", b"{}", b"")).decode()
    assert signing.decrypt_resource(KEY, resource(sealed, nonce="0123456789ab", associated_data="")) == b"{}"
    without = resource(sealed, nonce="0123456789ab")
    del without["associated_data"]
    assert signing.decrypt_resource(KEY, without) == b"{}"


def flip(ciphertext: str, index: int) -> str:
    raw = bytearray(base64.b64decode(ciphertext))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (resource(flip(PINNED_CIPHERTEXT, 0)), "InvalidTag"),  # a ciphertext byte
        (resource(flip(PINNED_CIPHERTEXT, -1)), "InvalidTag"),  # a tag byte
        (resource(PINNED_CIPHERTEXT, associated_data="refund"), "InvalidTag"),
        (resource(PINNED_CIPHERTEXT, associated_data=""), "InvalidTag"),
        (resource(PINNED_CIPHERTEXT, nonce="fdasflkja485"), "InvalidTag"),
        (resource(PINNED_CIPHERTEXT, algorithm="AEAD_SM4_GCM"), "algorithm"),
        (resource(PINNED_CIPHERTEXT, algorithm="aead_aes_256_gcm"), "algorithm"),
        (resource(PINNED_CIPHERTEXT[:-4]), "InvalidTag"),  # truncated tag
        (resource("AAAA"), "shorter than a GCM tag"),
        (resource("***"), "not base64"),
        (resource(""), "ciphertext is missing"),
        (resource(PINNED_CIPHERTEXT, nonce=""), "nonce is missing"),
        (resource(PINNED_CIPHERTEXT, nonce="short"), "cannot be decrypted"),
    ],
)
def test_resources_that_do_not_decrypt_are_refused(bad, reason):
    with pytest.raises(signing.ResourceProblem, match=reason):
        signing.decrypt_resource(KEY, bad)


def test_a_wrong_api_v3_key_does_not_decrypt():
    with pytest.raises(signing.ResourceProblem, match="InvalidTag"):
        signing.decrypt_resource(b"0" * 32, resource(PINNED_CIPHERTEXT))


@pytest.mark.parametrize("value", ["", "short", "TestOnlyApiV3Key0123456789abcdef0", "密钥" * 16, None, 32])
def test_api_v3_keys_must_be_32_ascii_bytes(value):
    with pytest.raises(ValueError):
        signing.check_api_v3_key(value)


def test_freshness_uses_the_given_moment():
    """Re-processing later: freshness is judged against when it was received, not now."""
    body = b"{}"
    headers = stub.signed_headers(body)
    key = signing.load_public_key(stub.PLATFORM_PUBLIC_KEY.read_bytes())
    signing.check_signed(headers.get, body, public_key=key, public_key_id=stub.PUBLIC_KEY_ID, now=stub.NOW)
    with pytest.raises(signing.SignatureProblem, match="300 s"):
        signing.check_signed(headers.get, body, public_key=key, public_key_id=stub.PUBLIC_KEY_ID,
                             now=stub.NOW + timedelta(minutes=5))
