"""WeChat Pay API v2's `sign` (§10.2) and the refund notification's `req_info` (§10.5).

The sign is checked against the official example of the v2 signature page,
quoted in docs/gateways-wechatpay.md §10.2, for MD5 and HMAC-SHA256; then
the refusals: a tampered field, a wrong key, a missing or forged sign.
`req_info` is checked against pycryptodomex's AES (fixtures/wechatpay_v2/stub.py),
an implementation apart from the adapter's `cryptography`.
"""
from __future__ import annotations

import base64
import hashlib

import pytest

from payments.gateways.wechatpay_v2 import signing
from payments.gateways.wechatpay_v2.signing import RefundInfoProblem, SignatureProblem, SignType
from tests.payments.gateways.fixtures.wechatpay_v2 import stub

# §10.2: the official example.
VECTOR_FIELDS = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
VECTOR_KEY = "192006250b4c09247ec02edce69f6a2d"
VECTOR_MD5 = "9A0A8659F005D6984697E2CA0A9CF3B7"
VECTOR_HMAC_SHA256 = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
VECTOR_STRING = (
    b"appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
    b"&key=192006250b4c09247ec02edce69f6a2d"
)


def test_the_string_to_sign_is_the_sorted_fields_and_the_key():
    assert signing.string_to_sign(VECTOR_FIELDS, VECTOR_KEY) == VECTOR_STRING


@pytest.mark.parametrize(("sign_type", "expected"), [(SignType.MD5, VECTOR_MD5),
                                                    (SignType.HMAC_SHA256, VECTOR_HMAC_SHA256)])
def test_the_published_vector_signs_to_the_published_sign(sign_type, expected):
    assert signing.make_sign(VECTOR_FIELDS, VECTOR_KEY, sign_type) == expected
    signing.check_signed({**VECTOR_FIELDS, "sign": expected}, VECTOR_KEY, sign_type)


def test_empty_values_and_the_sign_itself_are_left_out_of_the_signed_string():
    fields = {**VECTOR_FIELDS, "attach": "", "sign": "ANYTHING"}
    assert signing.make_sign(fields, VECTOR_KEY, SignType.MD5) == VECTOR_MD5


def test_unknown_new_fields_are_signed_too():
    fields = {**VECTOR_FIELDS, "zz_new_field": "1"}
    assert signing.make_sign(fields, VECTOR_KEY, SignType.MD5) != VECTOR_MD5


def test_hmac_sha256_requests_sign_their_sign_type_field():
    fields = {**VECTOR_FIELDS, "sign_type": "HMAC-SHA256"}
    assert b"&sign_type=HMAC-SHA256&key=" in signing.string_to_sign(fields, VECTOR_KEY)
    assert signing.make_sign(fields, VECTOR_KEY, SignType.HMAC_SHA256) != VECTOR_HMAC_SHA256


@pytest.mark.parametrize("sign_type", list(SignType))
@pytest.mark.parametrize(
    ("what", "fields", "key", "reason"),
    [
        ("a tampered field", {**VECTOR_FIELDS, "body": "test2"}, VECTOR_KEY, "does not verify"),
        ("an added field", {**VECTOR_FIELDS, "total_fee": "1"}, VECTOR_KEY, "does not verify"),
        ("a wrong key", VECTOR_FIELDS, "192006250b4c09247ec02edce69f6a2e", "does not verify"),
    ],
)
def test_a_tampered_field_or_a_wrong_key_is_refused(sign_type, what, fields, key, reason):
    good = VECTOR_MD5 if sign_type is SignType.MD5 else VECTOR_HMAC_SHA256
    with pytest.raises(SignatureProblem, match=reason):
        signing.check_signed({**fields, "sign": good}, key, sign_type)


@pytest.mark.parametrize("sign", ["", None, VECTOR_MD5.lower(), VECTOR_MD5[:-1], "签名" * 16, VECTOR_HMAC_SHA256])
def test_a_missing_altered_or_other_algorithms_sign_is_refused(sign):
    fields = dict(VECTOR_FIELDS)
    if sign is not None:
        fields["sign"] = sign
    with pytest.raises(SignatureProblem):
        signing.check_signed(fields, VECTOR_KEY, SignType.MD5)


def test_the_adapter_and_the_independent_stub_sign_alike():
    fields = stub.payment_fields()
    for sign_type in SignType:
        assert signing.make_sign(fields, stub.API_KEY, sign_type) == stub.wechat_sign(fields, sign_type=sign_type)


@pytest.mark.parametrize(("text", "expected"), [("", SignType.MD5), ("MD5", SignType.MD5),
                                                ("HMAC-SHA256", SignType.HMAC_SHA256)])
def test_sign_type_absent_means_md5(text, expected):
    assert signing.sign_type_of(text) is expected


@pytest.mark.parametrize("text", ["md5", "SHA256", "HMAC-SHA1", "RSA"])
def test_an_unknown_sign_type_is_refused(text):
    with pytest.raises(ValueError, match="neither MD5 nor HMAC-SHA256"):
        signing.sign_type_of(text)


@pytest.mark.parametrize("key", ["short", "x" * 33, "192006250b4c09247ec02edce69f6a2!", "密" * 32, None])
def test_an_api_key_must_be_32_letters_or_digits(key):
    with pytest.raises(ValueError, match="32 letters or digits"):
        signing.check_api_key(key)


# -- req_info (§10.5) ---------------------------------------------------------------


def test_the_req_info_key_is_the_lower_case_hex_md5_of_the_api_key():
    key = signing.refund_info_key(stub.API_KEY)
    assert key == hashlib.md5(stub.API_KEY.encode()).hexdigest().encode()
    assert len(key) == 32 and key == key.lower()


def test_req_info_encrypted_independently_decrypts():
    plaintext = stub.xml_of(stub.refund_info(), root="root")
    assert signing.decrypt_refund_info(stub.encrypt_req_info(plaintext), stub.API_KEY) == plaintext


def test_req_info_under_another_key_or_the_upper_case_hex_key_is_refused():
    plaintext = stub.xml_of(stub.refund_info(), root="root")
    upper_key = hashlib.md5(stub.API_KEY.encode()).hexdigest().upper()
    # Ciphertext made with the upper-case hex as key, which the doc warns about.
    from Cryptodome.Cipher import AES
    from Cryptodome.Util.Padding import pad

    upper = base64.b64encode(AES.new(upper_key.encode(), AES.MODE_ECB).encrypt(pad(plaintext, 16))).decode()
    for req_info in (stub.encrypt_req_info(plaintext, "AnotherApiV2Key0123456789abcdefg"), upper):
        with pytest.raises(RefundInfoProblem):
            signing.decrypt_refund_info(req_info, stub.API_KEY)


@pytest.mark.parametrize(
    ("req_info", "reason"),
    [
        ("not base64!", "not base64"),
        ("", "whole number of AES blocks"),
        (base64.b64encode(b"x" * 15).decode(), "whole number of AES blocks"),
        ("密文", "not base64"),
    ],
)
def test_req_info_that_is_not_whole_aes_blocks_of_base64_is_refused(req_info, reason):
    with pytest.raises(RefundInfoProblem, match=reason):
        signing.decrypt_refund_info(req_info, stub.API_KEY)


def test_req_info_whose_pkcs7_padding_is_wrong_is_refused():
    # Sixteen bytes that are not padding at all: the last byte says 0x41.
    unpadded = stub.encrypt_req_info(b"<root>x</root>AA", padding=False)
    with pytest.raises(RefundInfoProblem, match="PKCS#7"):
        signing.decrypt_refund_info(unpadded, stub.API_KEY)
