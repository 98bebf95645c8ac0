"""UnionPay ACP 5.1.0 signing and verification against the published vectors
(docs/gateways-alipay-unionpay.md B2-B4; fixtures/unionpay/README.md), a pinned
known-good signature, `openssl dgst`, and our own chains and impostors."""
from __future__ import annotations

import base64
import hashlib
import subprocess
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from payments.gateways.unionpay import UnionPayGateway
from payments.gateways.unionpay.client import verify_message
from payments.gateways.unionpay.formats import split_answer
from payments.gateways.unionpay.signing import (
    CertificateRefused,
    check_unionpay_certificate,
    common_name,
    load_signing_credential,
    load_trust_bundle,
    message_certificate,
    sign_request,
    signature_verifies,
    signing_text,
)
from tests.payments.gateways.unionpay_support import (
    CFCA_TEST_CHAIN,
    FIXTURES,
    PUBLISHED_CERT_ID,
    PUBLISHED_PFX,
    PUBLISHED_PFX_PASSWORD,
    acp_verify,
    published_notification,
    read_raw_vector,
)

# The vectors' signPubKeyCert was valid from 2020-07-31 to 2025-07-31.
WHILE_VALID = datetime(2024, 1, 5, 6, 50, tzinfo=UTC)
AFTER_EXPIRY = datetime(2025, 8, 1, tzinfo=UTC)

# yansongda/pay @ 3dc61227, tests/Plugin/Unipay/Open/AddPayloadSignaturePluginTest.php
# testNormal (MIT): a consume request body and the signature it expects from
# unipayAppCert.pfx; its blank `signature` field is left out, as B3 says.
PINNED_CONSUME = {
    "txnTime": "20220903065448", "txnAmt": "1", "orderId": "yansongda20220903065448", "version": "5.1.0",
    "encoding": "utf-8", "bizType": "000201", "backUrl": "https://yansongda.cn/unipay/notify",
    "currencyCode": "156", "txnType": "01", "txnSubType": "01", "accessType": "0", "signature": "",
    "signMethod": "01", "channelType": "07", "merId": "777290058167151",
    "frontUrl": "https://yansongda.cn/unipay/return", "certId": "69903319369",
}  # fmt: skip
PINNED_SIGNATURE = (
    "CJ0Hh6WC0YldYMi2cIi7rjOvV4IJyzhqgj8KKNeRWZz+2csPVlDcnP1f4YfykVww6NDimsl2zE+oQAm7lH8qiU5f8ojVH+P62uMe1yqb2W"
    "oNlIM45REg6bhfUPvATgecVplnKIPdFUGdRZ97va+ZVbla75HwtskZnDykmr9rkYaSg7PcGuilEwHcb2rV+BNkCi3bi4fYELjYlE1a7Imv"
    "/cSLRyXkPS1jzF0HUIUiVA6P98DYh0GbsgqRZqPYsGocFJs9jZoAlu44RygzDKjK/n8iwhHNH61IFaADdGp+uLQsol6kR/DRpF1pZgO7ls"
    "uK0YuaL6pfN6dtkJO9prbu6Q=="
)
RESPONSES = ["query-response.txt", "undo-response.txt", "refund-response.txt"]


@pytest.fixture(scope="module")
def published_credential():
    return load_signing_credential(PUBLISHED_PFX.read_bytes(), PUBLISHED_PFX_PASSWORD)


@pytest.fixture(scope="module")
def cfca_trust():
    return load_trust_bundle(CFCA_TEST_CHAIN.read_bytes())


# -- the merchant's signing certificate (B2) -----------------------------------


def test_the_published_pfx_opens_with_its_password_and_its_serial_is_the_cert_id(published_credential):
    assert published_credential.cert_id == PUBLISHED_CERT_ID
    assert published_credential.private_key.key_size == 2048
    assert "CFCA TEST OCA1" in published_credential.certificate.issuer.rfc4514_string()


def test_a_wrong_password_is_a_clear_configuration_problem_that_names_no_secret(tmp_path):
    options = {"mer_id": "777290058167151", "sign_cert_path": str(PUBLISHED_PFX), "sign_cert_password": "123456",
               "verify_cert_path": str(CFCA_TEST_CHAIN), "gateway_base": "https://gateway.test.95516.com/gateway/api",
               "file_transfer_url": "https://filedownload.test.95516.com/"}
    (problem,) = UnionPayGateway.configuration_problems(options)
    assert problem.startswith("sign_cert_path: ") and "does not load" in problem
    assert "123456" not in problem
    assert UnionPayGateway.configuration_problems({**options, "sign_cert_password": PUBLISHED_PFX_PASSWORD}) == []


def test_a_cert_id_that_is_not_the_certificates_serial_is_refused():
    options = {"mer_id": "777290058167151", "sign_cert_path": str(PUBLISHED_PFX),
               "sign_cert_password": PUBLISHED_PFX_PASSWORD, "sign_cert_id": "12345",
               "verify_cert_path": str(CFCA_TEST_CHAIN), "gateway_base": "https://gateway.test.95516.com/gateway/api",
               "file_transfer_url": "https://filedownload.test.95516.com/"}
    assert UnionPayGateway.configuration_problems(options) == [
        "sign_cert_id 12345 is not the signing certificate's serial (69903319369)"]


# -- request signing (B4) --------------------------------------------------------


def test_signing_reproduces_the_published_signature(published_credential):
    signed = sign_request(PINNED_CONSUME, published_credential)

    assert signed["signature"] == PINNED_SIGNATURE
    assert "signature" in signed and signed["certId"] == PUBLISHED_CERT_ID
    # The blank field was neither signed nor kept.
    assert signing_text(signed).startswith("accessType=0&backUrl=https://yansongda.cn/unipay/notify&bizType=000201")


def test_the_signed_message_is_the_hex_text_of_the_sha256_not_the_string(published_credential, tmp_path: Path):
    """`openssl dgst -sha256 -sign` over the 64 hex characters gives the same bytes."""
    signed = sign_request(PINNED_CONSUME, published_credential)
    hex_text = hashlib.sha256(signing_text(signed).encode("utf-8")).hexdigest()
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(published_credential.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    message = tmp_path / "message.txt"
    message.write_bytes(hex_text.encode("ascii"))

    result = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key_file), str(message)], check=True,
                            capture_output=True)

    assert base64.b64encode(result.stdout).decode() == PINNED_SIGNATURE
    public_key = published_credential.certificate.public_key()
    assert acp_verify(signed, public_key)
    assert not acp_verify({**signed, "txnAmt": "2"}, public_key)


# -- verifying what UnionPay sends (B3, B4, B14) -----------------------------------


@pytest.mark.parametrize("name", RESPONSES)
def test_the_recorded_answers_verify_with_their_certificate_chained_to_the_cfca_test_root(name, cfca_trust):
    body = (FIXTURES / name).read_bytes().decode("utf-8")

    fields = split_answer(body)

    assert "\r\n" in fields["signPubKeyCert"]
    verify_message(fields, cfca_trust, at=WHILE_VALID)
    assert fields["respCode"] == "00"
    certificate = message_certificate(fields)
    assert common_name(certificate).split("@")[2] == "中国银联股份有限公司"
    assert certificate.serial_number == 69678957876


def test_the_recorded_query_answer_keeps_its_raw_values(cfca_trust):
    fields = split_answer((FIXTURES / "query-response.txt").read_bytes().decode("utf-8"))
    assert fields["origRespCode"] == "00" and fields["txnAmt"] == "1"
    assert "+" in fields["accNo"] and "/" in fields["accNo"]
    assert fields == read_raw_vector("query-response.txt")


def test_form_decoding_or_normalised_line_breaks_break_the_signature(cfca_trust):
    body = (FIXTURES / "query-response.txt").read_bytes().decode("utf-8")
    fields = split_answer(body)
    key = message_certificate(fields).public_key()
    assert signature_verifies(fields, key)

    form_decoded = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
    assert not signature_verifies(form_decoded, key)
    lf_only = {**fields, "signPubKeyCert": fields["signPubKeyCert"].replace("\r\n", "\n")}
    assert not signature_verifies(lf_only, key)


def test_the_published_notification_verifies_and_a_changed_amount_does_not(cfca_trust):
    fields = published_notification()

    verify_message(fields, cfca_trust, at=datetime(2022, 9, 8, 5, 22, tzinfo=UTC))

    with pytest.raises(ValueError, match="does not verify"):
        verify_message({**fields, "txnAmt": "100"}, cfca_trust, at=datetime(2022, 9, 8, 5, 22, tzinfo=UTC))


def test_an_expired_signing_certificate_is_refused(cfca_trust):
    fields = split_answer((FIXTURES / "refund-response.txt").read_bytes().decode("utf-8"))
    with pytest.raises(CertificateRefused, match="valid from 2020-07-31 to 2025-07-31"):
        verify_message(fields, cfca_trust, at=AFTER_EXPIRY)


def test_a_genuine_unionpay_certificate_from_another_chain_is_refused(unionpay_chain):
    """The vectors' certificate is real, but not from the chain this shop trusts."""
    trust = load_trust_bundle(unionpay_chain.bundle_pem())
    fields = published_notification()
    with pytest.raises(CertificateRefused, match="does not chain"):
        verify_message(fields, trust, at=datetime(2022, 9, 8, tzinfo=UTC))


def test_our_chain_accepts_our_unionpay_certificate_and_refuses_the_impostors(unionpay_chain):
    trust = load_trust_bundle(unionpay_chain.bundle_pem())
    at = datetime(2024, 5, 1, tzinfo=UTC)
    key = check_unionpay_certificate(unionpay_chain.unionpay.certificate, trust, at=at)
    assert key.public_numbers() == unionpay_chain.unionpay.certificate.public_key().public_numbers()

    refusals = {
        "impostor": (unionpay_chain.impostor, "does not chain"),
        "wrong_cn": (unionpay_chain.wrong_cn, "not UnionPay"),
        "expired": (unionpay_chain.expired, "valid from"),
    }
    for label, (signer, reason) in refusals.items():
        with pytest.raises(CertificateRefused, match=reason):
            check_unionpay_certificate(signer.certificate, trust, at=at)
        assert label


def test_a_trust_bundle_without_its_root_cannot_vouch_for_anything(unionpay_chain):
    with pytest.raises(ValueError, match="no self-signed root"):
        load_trust_bundle(unionpay_chain.middle_only_pem())
    with pytest.raises(ValueError, match="not PEM certificates"):
        load_trust_bundle(b"not a certificate")


def test_the_middle_certificate_itself_is_not_a_unionpay_signing_certificate(unionpay_chain):
    trust = load_trust_bundle(unionpay_chain.bundle_pem())
    middle = x509.load_pem_x509_certificates(unionpay_chain.bundle_pem())[0]
    with pytest.raises(CertificateRefused, match="not UnionPay"):
        check_unionpay_certificate(middle, trust, at=datetime(2024, 5, 1, tzinfo=UTC))
