"""Back-channel calls to UnionPay ACP 5.1.0 and verification of what comes back.

Requests are POSTed form-encoded in UTF-8 with every field signed (B3, B4);
answers are raw `key=value&...` bodies (B3), split without form-decoding and
believed only once their signature and signPubKeyCert check out (B4, B14).
HTTP and `requests` types stay in here.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import requests
from cryptography import x509

from payments.exceptions import GatewayRejected, GatewayUnavailable, InvalidNotification, ResponseNotVerified
from payments.gateways.unionpay.formats import IN_FLIGHT, RESP_SUCCESS, TRY_LATER, split_answer
from payments.gateways.unionpay.signing import (
    CertificateRefused,
    SigningCredential,
    check_unionpay_certificate,
    message_certificate,
    sign_request,
    signature_verifies,
)

logger = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"


def verify_message(fields: Mapping[str, str], trust: Sequence[x509.Certificate], *, at: datetime) -> None:
    """B14 step 1: signPubKeyCert is UnionPay's, then the signature verifies with it.

    Raises CertificateRefused (the certificate is not UnionPay's) or
    ValueError (no or a wrong signature).
    """
    key = check_unionpay_certificate(message_certificate(fields), trust, at=at)
    if not signature_verifies(fields, key):
        raise ValueError("the signature does not verify with signPubKeyCert")


def verified_callback(fields: Mapping[str, str], trust: Sequence[x509.Certificate], *, at: datetime,
                      mer_id: str) -> None:
    """A notification or front return: UnionPay signed it, and it is ours (B14 steps 1-2).

    Raises InvalidNotification.
    """
    try:
        verify_message(fields, trust, at=at)
    except CertificateRefused as exc:
        raise InvalidNotification(f"certificate refused: {exc}") from None
    except ValueError as exc:
        raise InvalidNotification(str(exc)) from None
    if fields.get("merId") != mer_id:
        raise InvalidNotification(f"merId {fields.get('merId', '')[:20]!r} is not ours")


@dataclass(frozen=True)
class AcpClient:
    session: requests.Session
    timeout: tuple[float, float]
    credential: SigningCredential
    trust: Sequence[x509.Certificate]
    mer_id: str
    clock: Callable[[], datetime]

    def sign(self, fields: Mapping[str, str]) -> dict[str, str]:
        return sign_request(fields, self.credential)

    def call(self, url: str, fields: Mapping[str, str], *, label: str, reference: str) -> dict[str, str]:
        """POST signed `fields` to `url`; the verified answer's fields.

        Raises GatewayUnavailable for a timeout, a connection error or a
        non-200 answer, and ResponseNotVerified (a GatewayUnavailable) for
        an answer that does not parse, does not verify, or speaks of another
        merchant. The caller reads respCode.
        """
        signed = self.sign(fields)
        try:
            response = self.session.post(url, data=signed, headers={"Content-Type": FORM_CONTENT_TYPE},
                                         timeout=self.timeout)
        except requests.Timeout as exc:
            raise GatewayUnavailable(f"{label} for {reference}: timeout ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            raise GatewayUnavailable(f"{label} for {reference}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise GatewayUnavailable(f"{label} for {reference}: HTTP {response.status_code}")
        try:
            answer = split_answer(response.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ResponseNotVerified(f"{label} for {reference}: the answer does not parse ({exc})") from None
        try:
            verify_message(answer, self.trust, at=self.clock())
        except ValueError as exc:  # CertificateRefused included
            logger.error("unionpay %s for %s: answer not verified: %s", label, reference, exc)
            raise ResponseNotVerified(f"{label} for {reference}: the answer is not verified ({exc})") from None
        if answer.get("merId", self.mer_id) != self.mer_id:
            raise ResponseNotVerified(f"{label} for {reference}: the answer is for another merchant")
        return answer


def raise_for_resp_code(answer: Mapping[str, str], *, label: str, reference: str) -> None:
    """respCode 00 passes; an unknown outcome or "try later" raises
    GatewayUnavailable; any other code GatewayRejected(code=sub_code=respCode)."""
    code = answer.get("respCode", "")
    if code == RESP_SUCCESS:
        return
    message = answer.get("respMsg", "")
    if code in IN_FLIGHT or code in TRY_LATER:
        raise GatewayUnavailable(f"{label} for {reference}: respCode {code} {message}: ask again later")
    raise GatewayRejected(message or f"{label} refused", code=code, sub_code=code)
