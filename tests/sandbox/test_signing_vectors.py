"""RSA2 signing cross-checked on a published test key, with no process running.

The sandbox's signer, this suite's own signer and python-alipay-sdk must give
byte-identical signatures (PKCS#1 v1.5 is deterministic) and agree on what
is signed, so a mistake shared by two of them cannot hide.
"""
from pathlib import Path

import pytest
from alipay import AliPay

from sandbox.alipay import signing as sandbox_signing
from tests.sandbox import alipay_client

# Published TEST keys of alipay-sdk-nodejs-all (see the README beside them).
VECTORS = Path(__file__).resolve().parent / "fixtures" / "alipay-vectors"

REQUEST = {
    "app_id": "2014072300007148",
    "method": "alipay.trade.query",
    "charset": "utf-8",
    "sign_type": "RSA2",
    "timestamp": "2014-07-24 03:07:50",
    "version": "1.0",
    "notify_url": "https://merchant.example/notify/",
    "return_url": "",
    "biz_content": '{"out_trade_no":"20150320010101001","subject":"龙井 / tea & cup = gift","total_amount":"88.88"}',
}


@pytest.fixture(scope="module")
def published_private_pem() -> bytes:
    return (VECTORS / "app-private-key.pem").read_bytes()


@pytest.fixture(scope="module")
def published_public_pem() -> bytes:
    return (VECTORS / "app-public-key.pem").read_bytes()


@pytest.fixture(scope="module")
def sdk(published_private_pem) -> AliPay:
    return AliPay(
        appid=REQUEST["app_id"],
        app_private_key_string=published_private_pem.decode(),
        # The SDK loads this key at start; verification here uses the app pair.
        alipay_public_key_string=(VECTORS / "alipay-public-key.pem").read_text(),
        sign_type="RSA2",
    )


def test_request_text_keeps_sign_type_and_drops_sign_and_empty_values():
    text = sandbox_signing.canonical_string({**REQUEST, "sign": "x"}, unsigned=sandbox_signing.REQUEST_UNSIGNED)

    assert text.startswith("app_id=2014072300007148&biz_content={")
    assert "sign_type=RSA2" in text
    assert "sign=" not in text.replace("sign_type=", "")
    assert "return_url" not in text
    assert text == alipay_client.signed_text({**REQUEST, "sign": "x"}, without=("sign",))


def test_notification_text_drops_sign_and_sign_type():
    params = {"trade_status": "TRADE_SUCCESS", "sign_type": "RSA2", "sign": "x", "total_amount": "1.00"}

    text = sandbox_signing.canonical_string(params, unsigned=sandbox_signing.NOTIFICATION_UNSIGNED)

    assert text == "total_amount=1.00&trade_status=TRADE_SUCCESS"


def test_sandbox_test_and_sdk_signers_agree_on_the_published_key(sdk, published_private_pem):
    text = alipay_client.signed_text(REQUEST, without=("sign",))

    sandbox_signature = sandbox_signing.rsa2_sign(text, sandbox_signing.load_private_key(published_private_pem))
    test_signature = alipay_client.rsa2_sign(text, published_private_pem)
    sdk_signature = sdk._sign(text)

    assert sandbox_signature == test_signature == sdk_signature
    assert len(sandbox_signature) == 344


def test_the_sdk_signs_a_request_the_sandbox_verifier_accepts(sdk, published_public_pem):
    """python-alipay-sdk's whole request (its own ordering and quoting) verifies
    under the sandbox's A4 rules; tampering with any value breaks it."""
    from urllib.parse import parse_qsl

    biz = {"out_trade_no": "20150320010101001", "total_amount": "88.88", "subject": "龙井 tea"}
    query = sdk.sign_data(sdk.build_body("alipay.trade.query", biz, timestamp="2014-07-24 03:07:50"))
    params = dict(parse_qsl(query, keep_blank_values=True))
    public_key = sandbox_signing.load_public_key(published_public_pem)
    text = sandbox_signing.canonical_string(params, unsigned=sandbox_signing.REQUEST_UNSIGNED)

    assert sandbox_signing.rsa2_verify(text, params["sign"], public_key)
    tampered = sandbox_signing.canonical_string(
        {**params, "biz_content": params["biz_content"].replace("88.88", "0.01")},
        unsigned=sandbox_signing.REQUEST_UNSIGNED,
    )
    assert not sandbox_signing.rsa2_verify(tampered, params["sign"], public_key)


def test_a_pem_without_final_newline_and_a_pkcs1_key_both_load(published_private_pem):
    assert published_private_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    sandbox_signing.load_private_key(published_private_pem)
    alipay_public = (VECTORS / "alipay-public-key.pem").read_bytes()
    assert not alipay_public.endswith(b"\n")
    sandbox_signing.load_public_key(alipay_public)


def test_a_malformed_signature_is_rejected_not_raised(published_public_pem):
    public_key = sandbox_signing.load_public_key(published_public_pem)

    assert not sandbox_signing.rsa2_verify("a=b", "not base64!", public_key)
    assert not sandbox_signing.rsa2_verify("a=b", "", public_key)
