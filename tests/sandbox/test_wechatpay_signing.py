"""The sandbox's WeChat Pay cryptography against independent implementations: the
OpenSSL command line for SHA256withRSA, the GCM specification's test vectors for
AEAD_AES_256_GCM, and the running sandbox checked with OpenSSL both ways."""
import base64
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.wechatpay.signing import (
    AuthorizationInvalid,
    aes_gcm_decrypt,
    aes_gcm_encrypt,
    answer_message,
    parse_authorization,
    request_message,
    rsa_sign,
    rsa_verify,
)
from tests.sandbox.wechatpay_client import MCHID, SCHEME, SERIAL_NO, key_path

pytestmark = [pytest.mark.xdist_group("sandbox-wechatpay")]


def openssl(*args: str, data: bytes) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True, timeout=30).stdout


def openssl_sign(message: bytes, private_key_path) -> str:
    return base64.b64encode(openssl("dgst", "-sha256", "-sign", str(private_key_path), data=message)).decode()


def openssl_verifies(message: bytes, signature: str, public_key_path, tmp_path) -> bool:
    signature_file = tmp_path / "signature.bin"
    signature_file.write_bytes(base64.b64decode(signature))
    done = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(public_key_path), "-signature", str(signature_file)],
        input=message, capture_output=True, timeout=30,
    )  # fmt: skip
    return done.returncode == 0


@pytest.fixture
def key_pair(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return key, path


def test_the_request_message_is_five_lf_terminated_lines():
    message = request_message("GET", "/wechatpay/v3/x?mchid=1", "1554208460", "N", b"")

    assert message == b"GET\n/wechatpay/v3/x?mchid=1\n1554208460\nN\n\n"


def test_the_answer_message_of_an_empty_body_ends_in_an_empty_line():
    assert answer_message("1554208460", "N", b"") == b"1554208460\nN\n\n"


def test_the_sandbox_signs_exactly_as_openssl(key_pair):
    key, path = key_pair
    message = answer_message("1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", '{"code_url":"龙井"}'.encode())

    assert rsa_sign(message, key) == openssl_sign(message, path)
    assert rsa_verify(message, openssl_sign(message, path), key.public_key())
    assert not rsa_verify(message + b" ", openssl_sign(message, path), key.public_key())


@pytest.mark.parametrize(
    ("key", "nonce", "plaintext", "sealed_hex"),
    [
        # McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14.
        (bytes(32), "\x00" * 12, b"", "530f8afbc74536b9a963b4f1c4cb738b"),
        (bytes(32), "\x00" * 12, bytes(16), "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"),
    ],
    ids=["case 13", "case 14"],
)
def test_aes_gcm_matches_the_specification_vectors(key, nonce, plaintext, sealed_hex):
    ciphertext = aes_gcm_encrypt(key, nonce, plaintext, "")

    assert base64.b64decode(ciphertext).hex() == sealed_hex
    assert aes_gcm_decrypt(key, nonce, ciphertext, "") == plaintext


def test_aes_gcm_binds_the_associated_data():
    key = b"SandboxApiV3KeyNotASecret0000001"
    ciphertext = aes_gcm_encrypt(key, "abcdefghijkl", b'{"a":1}', "transaction")

    with pytest.raises(ValueError):
        aes_gcm_decrypt(key, "abcdefghijkl", ciphertext, "refund")


def test_the_authorization_header_parses_in_any_order():
    header = f'{SCHEME} serial_no="S",timestamp="1",signature="x/y+=",nonce_str="N",mchid="M"'

    assert parse_authorization(header) == {"serial_no": "S", "timestamp": "1", "signature": "x/y+=",
                                           "nonce_str": "N", "mchid": "M"}  # fmt: skip


@pytest.mark.parametrize(
    "header",
    [
        'WECHATPAY2-SHA256-RSA2048 mchid="M",nonce_str="N",signature="S",timestamp="1"',
        'WECHATPAY2-SHA256-RSA2048 mchid="M", nonce_str="N",signature="S",timestamp="1",serial_no="S"',
        'WECHATPAY2-SHA256-RSA2048 mchid="M",mchid="M",nonce_str="N",signature="S",timestamp="1",serial_no="S"',
        'WECHATPAY2-SHA256-RSA2048 mchid=M,nonce_str="N",signature="S",timestamp="1",serial_no="S"',
        'Bearer mchid="M",nonce_str="N",signature="S",timestamp="1",serial_no="S"',
    ],
    ids=["a pair missing", "a space", "a pair twice", "unquoted", "another scheme"],
)
def test_a_malformed_authorization_header_is_refused(header):
    with pytest.raises(AuthorizationInvalid):
        parse_authorization(header)


@pytest.mark.e2e
def test_the_running_sandbox_and_openssl_agree_both_ways(sandbox, wx, tmp_path):
    path = "/wechatpay/v3/pay/transactions/out-trade-no/T0000000000/close"
    body = f'{{"mchid":"{MCHID}"}}'.encode()
    timestamp, nonce = str(int(time.time())), "593BEC0C930BF1AFEB40B4A08C8FB242"
    signature = openssl_sign(request_message("POST", path, timestamp, nonce, body),
                             key_path(sandbox, "merchant", "private"))  # fmt: skip
    authorization = (
        f'{SCHEME} mchid="{MCHID}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{SERIAL_NO}"'
    )

    response = wx.call("POST", path.removeprefix("/wechatpay"), body=body, authorization=authorization)

    # An unknown order closes with 204: the sandbox took OpenSSL's signature...
    assert (response.status_code, response.content) == (204, b"")
    message = answer_message(response.headers["Wechatpay-Timestamp"], response.headers["Wechatpay-Nonce"], b"")
    # ...and OpenSSL takes the sandbox's, over the empty body.
    public_key = key_path(sandbox, "platform", "public")
    assert openssl_verifies(message, response.headers["Wechatpay-Signature"], public_key, tmp_path)
