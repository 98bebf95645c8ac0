"""Test-side UnionPay ACP 5.1.0 pieces, written apart from the adapter and the sandbox.

- `acp_sign` / `acp_verify`: the B4 signature (sorted `name=value&...`, SHA-256
  as lowercase hex, SHA256withRSA over the hex), our own implementation, so
  a mistake shared by the adapter and the sandbox cannot hide;
- `TestChain`: a throwaway root and middle CA with UnionPay's signing
  certificate, and the impostors a careful merchant must refuse (another
  chain with UnionPay's CN, a certificate of the real middle CA naming
  someone else, an expired one);
- `UnionPayStub`: the UnionPay hosts behind `responses`, answering with raw
  signed `key=value&...` bodies and recording what the adapter sent.
"""
from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import responses
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from payments.gateways.base import RawNotification

FIXTURES = Path(__file__).parent / "fixtures" / "unionpay"
PUBLISHED_PFX = FIXTURES / "unipayAppCert.pfx"
PUBLISHED_PFX_PASSWORD = "000000"
PUBLISHED_CERT_ID = "69903319369"
PUBLISHED_MER_ID = "777290058167151"
CFCA_TEST_CHAIN = FIXTURES / "cfca-test-chain.pem"

MER_ID = "898110000000001"
GATEWAY_BASE = "https://gateway.unionpay.test/gateway/api"
FILE_TRANSFER_URL = "https://filedownload.unionpay.test/"
FRONT_URL = f"{GATEWAY_BASE}/frontTransReq.do"
BACK_URL = f"{GATEWAY_BASE}/backTransReq.do"
QUERY_URL = f"{GATEWAY_BASE}/queryTrans.do"
UNIONPAY_CN = "041@8310000000083040@中国银联股份有限公司@00016495"


def acp_text(fields: Mapping[str, str]) -> str:
    return "&".join(f"{name}={fields[name]}" for name in sorted(fields) if name != "signature")


def _hex_digest(fields: Mapping[str, str]) -> bytes:
    return hashlib.sha256(acp_text(fields).encode("utf-8")).hexdigest().encode("ascii")


def acp_sign(fields: Mapping[str, str], key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(key.sign(_hex_digest(fields), padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def acp_verify(fields: Mapping[str, str], key: rsa.RSAPublicKey) -> bool:
    try:
        key.verify(base64.b64decode(fields["signature"]), _hex_digest(fields), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, KeyError, ValueError):
        return False
    return True


def raw_answer(fields: Mapping[str, str]) -> str:
    """B3: unencoded `key=value&...`, as UnionPay writes back-channel answers."""
    return "&".join(f"{name}={value}" for name, value in fields.items())


def read_raw_vector(name: str) -> dict[str, str]:
    """A recorded answer, CRLF kept, split on `&` and the first `=` (never form-decoded)."""
    text = (FIXTURES / name).read_bytes().decode("utf-8")
    return dict(pair.split("=", 1) for pair in text.split("&"))


def published_notification() -> dict[str, str]:
    return json.loads((FIXTURES / "notify.json").read_text(encoding="utf-8"))


# -- certificates ------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey, *,
                 ca: bool, not_before: datetime, not_after: datetime, serial: int | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Signer:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        """signPubKeyCert as UnionPay sends it: PEM with CRLF line breaks."""
        text = self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii").strip()
        return "\r\n".join(text.splitlines())

    def sign(self, fields: Mapping[str, str]) -> dict[str, str]:
        signed = {**fields, "signPubKeyCert": self.pem}
        signed.pop("signature", None)
        signed["signature"] = acp_sign(signed, self.key)
        return signed


@dataclass
class TestChain:
    """A root, a middle CA, UnionPay's signing certificate and the impostors."""

    __test__ = False  # not a test class, whatever its name says

    # Valid across every clock the tests use (the pinned 2024 and today);
    # the expired certificate ended before both.
    valid_from: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    valid_to: datetime = datetime(2045, 1, 1, tzinfo=UTC)
    expired_on: datetime = datetime(2023, 12, 31, tzinfo=UTC)

    def _authority(self, root_cn: str, middle_cn: str) -> tuple[x509.Certificate, x509.Certificate,
                                                                rsa.RSAPrivateKey]:
        start, end = self.valid_from, self.valid_to
        root_key, middle_key = _key(), _key()
        root = _certificate(root_cn, root_key, _name(root_cn), root_key, ca=True, not_before=start, not_after=end)
        middle = _certificate(middle_cn, middle_key, root.subject, root_key, ca=True, not_before=start,
                              not_after=end)
        return root, middle, middle_key

    @cached_property
    def _real(self) -> tuple[x509.Certificate, x509.Certificate, rsa.RSAPrivateKey]:
        return self._authority("Test UnionPay Root", "Test UnionPay OCA1")

    def _leaf(self, common_name: str, middle: x509.Certificate, middle_key: rsa.RSAPrivateKey, *,
              not_before: datetime | None = None, not_after: datetime | None = None) -> Signer:
        key = _key()
        certificate = _certificate(common_name, key, middle.subject, middle_key, ca=False,
                                   not_before=not_before or self.valid_from, not_after=not_after or self.valid_to)
        return Signer(key, certificate)

    @cached_property
    def unionpay(self) -> Signer:
        _root, middle, middle_key = self._real
        return self._leaf(UNIONPAY_CN, middle, middle_key)

    @cached_property
    def impostor(self) -> Signer:
        """A valid signature and UnionPay's CN, under a chain nobody configured."""
        _root, middle, middle_key = self._authority("Impostor Root", "Impostor OCA1")
        return self._leaf(UNIONPAY_CN, middle, middle_key)

    @cached_property
    def wrong_cn(self) -> Signer:
        _root, middle, middle_key = self._real
        return self._leaf("041@8310000000083040@某某科技有限公司@00016495", middle, middle_key)

    @cached_property
    def expired(self) -> Signer:
        _root, middle, middle_key = self._real
        return self._leaf(UNIONPAY_CN, middle, middle_key, not_after=self.expired_on)

    @cached_property
    def stranger_key(self) -> rsa.RSAPrivateKey:
        return _key()

    def bundle_pem(self) -> bytes:
        root, middle, _ = self._real
        return middle.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)

    def middle_only_pem(self) -> bytes:
        return self._real[1].public_bytes(serialization.Encoding.PEM)

    def forged(self, fields: Mapping[str, str]) -> dict[str, str]:
        """UnionPay's certificate, a stranger's signature."""
        signed = {**fields, "signPubKeyCert": self.unionpay.pem}
        signed["signature"] = acp_sign(signed, self.stranger_key)
        return signed


def merchant_pfx(path: Path, *, password: str = "test-pfx-password", serial: int = 71000000001) -> Path:
    """A throwaway merchant signing certificate and key as PKCS#12."""
    key = _key()
    now = datetime.now(UTC)
    certificate = _certificate(f"041@Z2024-01-01@{MER_ID}:SIGN@00000001", key, _name("Test Merchant CA"), key,
                               ca=False, not_before=now - timedelta(days=1), not_after=now + timedelta(days=365),
                               serial=serial)
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"sign", key, certificate, None, serialization.BestAvailableEncryption(password.encode())))
    return path


# -- notifications -------------------------------------------------------------


def form_body(fields: Mapping[str, str]) -> bytes:
    return urllib.parse.urlencode(fields, encoding="utf-8").encode("ascii")


def raw_notification(fields: Mapping[str, str], *, received_at: datetime | None = None,
                     body: bytes | None = None) -> RawNotification:
    return RawNotification(
        body=form_body(fields) if body is None else body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
        received_at=received_at or datetime.now(UTC),
        content_type="application/x-www-form-urlencoded",
        remote_addr="127.0.0.1",
    )


def consume_fields(order_id: str, txn_time: str, *, amount: str = "8800", query_id: str = "782405011003040674028",
                   resp_code: str = "00", mer_id: str = MER_ID) -> dict[str, str]:
    """The fields of a consume back notification (B7), unsigned."""
    return {
        "accessType": "0", "bizType": "000201", "currencyCode": "156", "encoding": "UTF-8", "merId": mer_id,
        "orderId": order_id, "queryId": query_id, "respCode": resp_code, "respMsg": "成功[0000000]",
        "settleAmt": amount, "settleCurrencyCode": "156", "settleDate": txn_time[4:8], "signMethod": "01",
        "traceNo": "067402", "traceTime": txn_time[4:], "txnAmt": amount, "txnSubType": "01",
        "txnTime": txn_time, "txnType": "01", "version": "5.1.0",
    }  # fmt: skip


def refund_fields(out_refund_no: str, txn_time: str, *, amount: str = "3000",
                  orig_query_id: str = "782405011003040674028", query_id: str = "782405011004050000001",
                  resp_code: str = "00") -> dict[str, str]:
    """The fields of a refund back notification (B10), unsigned."""
    return {
        **consume_fields(out_refund_no, txn_time, amount=amount, query_id=query_id, resp_code=resp_code),
        "txnType": "04", "txnSubType": "00", "origQryId": orig_query_id,
    }


# -- the stubbed hosts ---------------------------------------------------------

# (the request's decoded fields) -> the answer's fields (unsigned), or an exception
Answer = Callable[[dict[str, str]], "dict[str, str] | Exception"]


class UnionPayStub:
    """Answers the adapter's POSTs with signed raw bodies queued per URL.

    `answer(url, fields_or_callable)` queues one answer; `sent(url)` lists
    the decoded fields of every request that URL received.
    """

    def __init__(self, http: responses.RequestsMock, signer: Signer) -> None:
        self.http = http
        self.signer = signer
        self.queues: dict[str, list[Any]] = {QUERY_URL: [], BACK_URL: [], FILE_TRANSFER_URL: []}
        self.requests: dict[str, list[dict[str, str]]] = {url: [] for url in self.queues}
        for url in self.queues:
            http.add_callback(responses.POST, url, callback=self._callback(url))

    def _callback(self, url: str) -> Callable[[Any], tuple[int, dict[str, str], bytes]]:
        def respond(request: Any) -> tuple[int, dict[str, str], bytes]:
            body = request.body.decode("ascii") if isinstance(request.body, bytes) else request.body
            fields = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
            self.requests[url].append(fields)
            if not self.queues[url]:
                raise AssertionError(f"no answer queued for {url}")
            answer = self.queues[url].pop(0)
            if callable(answer):
                answer = answer(fields)
            if isinstance(answer, Exception):
                raise answer
            if isinstance(answer, tuple):
                status, text = answer
                return status, {}, text.encode("utf-8")
            return 200, {"Content-Type": "text/plain;charset=UTF-8"}, raw_answer(answer).encode("utf-8")

        return respond

    def answer(self, url: str, answer: Any, *, signer: Signer | None = None, sign: bool = True) -> None:
        """Queue a dict (signed here), a (status, text) pair, an exception or a callable."""
        if isinstance(answer, dict) and sign:
            answer = (signer or self.signer).sign(answer)
        self.queues[url].append(answer)

    def sent(self, url: str) -> list[dict[str, str]]:
        return self.requests[url]

    def unanswered(self) -> dict[str, int]:
        return {url: len(queue) for url, queue in self.queues.items() if queue}


def query_answer(request: Mapping[str, str], *, resp_code: str = "00", orig_resp_code: str = "00",
                 txn_type: str = "01", amount: str = "8800", query_id: str = "782405011003040674028",
                 mer_id: str = MER_ID) -> dict[str, str]:
    """A query answer (B8) about the transaction the request names."""
    answer = {
        "accessType": "0", "bizType": "000000", "currencyCode": "156", "encoding": "UTF-8", "merId": mer_id,
        "orderId": request["orderId"], "txnTime": request["txnTime"], "respCode": resp_code,
        "respMsg": "成功[0000000]", "signMethod": "01", "txnType": txn_type, "txnSubType": "01", "version": "5.1.0",
    }  # fmt: skip
    if resp_code == "00":
        answer.update(origRespCode=orig_resp_code, origRespMsg="成功[0000000]", queryId=query_id, txnAmt=amount,
                      settleAmt=amount, settleDate=request["txnTime"][4:8], traceNo="784649",
                      traceTime=request["txnTime"][4:])
    return answer
