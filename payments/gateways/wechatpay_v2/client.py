"""Signed XML calls to WeChat Pay API v2, and mutual TLS for `/secapi/`.

docs/gateways-wechatpay.md §10.1 (the envelope: `appid`, `mch_id`,
`nonce_str`, `sign`, optional `sign_type`; answers with `return_code`, and
when it is SUCCESS `result_code`/`err_code` and a `sign`), §10.2 (the sign,
verified on every SUCCESS answer before anything else in it is read) and
§10.3 (mutual TLS with the merchant's `apiclient_cert` for `/secapi/...`,
server verification left on). `requests` and `ssl` types stay in here.

An answer's `return_code` FAIL (WeChat did not take the request: bad sign,
bad XML, no certificate) carries no sign and is a final GatewayRejected;
transport failures, non-200 statuses and answers that do not parse or do
not verify leave the outcome unknown (GatewayUnavailable, or its
ResponseNotVerified).
"""
from __future__ import annotations

import logging
import os
import secrets
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from requests.adapters import HTTPAdapter

from payments.exceptions import GatewayRejected, GatewayUnavailable, ResponseNotVerified
from payments.gateways.http_session import GatewaySession
from payments.gateways.wechatpay_v2.signing import (
    SIGN_FIELD,
    SIGN_TYPE_FIELD,
    SignatureProblem,
    SignType,
    check_signed,
    make_sign,
)
from payments.gateways.wechatpay_v2.xml import XmlProblem, parse_fields, to_xml

logger = logging.getLogger(__name__)

USER_AGENT = "django-shop-wechatpay/1.0 (+python-requests; API v2)"
XML_CONTENT_TYPE = "text/xml; charset=utf-8"
SUCCESS = "SUCCESS"
FAIL = "FAIL"
SECURE_PREFIX = "/secapi/"
GZIP_MAGIC = b"\x1f\x8b"
_MAX_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class ClientCertificate:
    """The merchant's `apiclient_cert` for mutual TLS: PEM files, or the `.p12` and its password."""

    cert_path: str = ""
    key_path: str = ""
    p12_path: str = ""
    p12_password: str = ""


def client_ssl_context(certificate: ClientCertificate, *, ca_bundle: str = "") -> ssl.SSLContext:
    """A TLS context that presents the merchant certificate and verifies the server.

    The server is checked against `ca_bundle` (the sandbox's CA in
    development) or, when empty, the CA bundle requests uses (certifi);
    hostname checking stays on. A `.p12` is opened in memory: its key is
    written to disk only encrypted under a random one-time password, for
    the moment `ssl` needs to load it from a file, and removed at once.
    Raises ValueError (or OSError) when the files do not load.
    """
    context = ssl.create_default_context(cafile=ca_bundle or certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate.p12_path:
        _load_p12(context, Path(certificate.p12_path).read_bytes(), certificate.p12_password)
    elif certificate.cert_path and certificate.key_path:
        for path in (certificate.cert_path, certificate.key_path):
            if not Path(path).is_file():
                # ssl's own error would not say which file.
                raise FileNotFoundError(2, "No such file", path)
        try:
            context.load_cert_chain(certificate.cert_path, certificate.key_path)
        except ssl.SSLError as exc:
            raise ValueError(f"the client certificate and key do not load together ({exc.reason})") from None
    else:
        raise ValueError("no client certificate: set the PEM certificate and key, or the .p12")
    return context


def _load_p12(context: ssl.SSLContext, data: bytes, password: str) -> None:
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(data, password.encode("utf-8") or None)
    except ValueError:
        raise ValueError("the .p12 does not open with this password") from None
    if key is None or cert is None:
        raise ValueError("the .p12 holds no certificate with its private key")
    one_time = secrets.token_urlsafe(32).encode("ascii")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    pem += b"".join(extra.public_bytes(serialization.Encoding.PEM) for extra in chain)
    pem += key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(one_time),
    )
    with tempfile.TemporaryDirectory(prefix="wechatpay-p12-") as directory:
        path = os.path.join(directory, "apiclient.pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(pem)
        try:
            context.load_cert_chain(path, password=one_time)
        except ssl.SSLError as exc:
            raise ValueError(f"the .p12 certificate and key do not load together ({exc.reason})") from None


class MutualTlsAdapter(HTTPAdapter):
    """Every connection through it uses one SSLContext: the client certificate
    presented, the server verified (a caller cannot turn that off)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str | None, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # requests' documented way to bring one's own context (see the base
        # method): set ssl_context, and keep the verification it carries.
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, True, None)
        pool_kwargs.pop("ca_certs", None)
        pool_kwargs.pop("ca_cert_dir", None)
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        pool_kwargs["ssl_context"] = self._context
        return host_params, pool_kwargs


def mutual_tls_session(context: ssl.SSLContext) -> requests.Session:
    session = GatewaySession()
    session.mount("https://", MutualTlsAdapter(context))
    # Plain HTTP never carries a client certificate: refuse it outright.
    session.mount("http://", _RefusePlainHttp())
    return session


class _RefusePlainHttp(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        raise requests.exceptions.InvalidSchema("mutual TLS calls must go over https")


@dataclass(frozen=True)
class Merchant:
    """Who signs: the app and merchant ids sent with every call, and the API key."""

    appid: str
    mch_id: str
    api_key: str
    sign_type: SignType


class ApiClient:
    """One merchant's signed calls to one API base (`https://api.mch.weixin.qq.com`, or the sandbox's)."""

    def __init__(
        self,
        *,
        session: requests.Session,
        secure_session: Callable[[], requests.Session],
        timeout: tuple[float, float],
        api_base: str,
        merchant: Merchant,
        ca_bundle: str,
        nonce: Callable[[], str],
    ) -> None:
        self.session = session
        self.secure_session = secure_session
        self.timeout = timeout
        self.api_base = api_base.rstrip("/")
        self.merchant = merchant
        self.ca_bundle = ca_bundle
        self.nonce = nonce

    def signed_body(self, fields: Mapping[str, str]) -> bytes:
        """The request: our ids, a nonce, the fields, `sign_type` when not MD5, and the sign."""
        message: dict[str, str] = {"appid": self.merchant.appid, "mch_id": self.merchant.mch_id,
                                   "nonce_str": self.nonce(), **fields}  # fmt: skip
        if self.merchant.sign_type is not SignType.MD5:
            # §10.2 step 6: non-empty, so it is signed too.
            message[SIGN_TYPE_FIELD] = self.merchant.sign_type.value
        message[SIGN_FIELD] = make_sign(message, self.merchant.api_key, self.merchant.sign_type)
        return to_xml(message)

    def call(self, path: str, fields: Mapping[str, str], *, reference: str, attempts: int = 1,
             retry_codes: frozenset[str] = frozenset()) -> dict[str, str]:  # fmt: skip
        """POST one signed call; the verified answer's fields (result_code may be FAIL).

        With `attempts` > 1, an answer whose err_code is in `retry_codes` is
        asked again with the identical body (same nonce, same sign: the
        same request, §11). Raises GatewayRejected (return_code FAIL),
        ResponseNotVerified and GatewayUnavailable.
        """
        body = self.signed_body(fields)
        for attempt in range(1, attempts + 1):
            answer = self._verified(self._post(path, body, reference=reference), path, reference)
            if answer.get("err_code") not in retry_codes or attempt == attempts:
                return answer
            logger.warning("wechatpay v2 %s for %s: %s, asking again with the same request (%d/%d)",
                           path, reference, answer.get("err_code"), attempt + 1, attempts)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def download(self, path: str, fields: Mapping[str, str], *, reference: str) -> bytes | dict[str, str]:
        """POST a call whose success is a file (§10.3 downloadbill): the bytes, or its XML error fields."""
        response = self._post(path, self.signed_body(fields), reference=reference)
        content = response.content
        if response.status_code != 200:
            raise GatewayUnavailable(f"POST {path}: HTTP {response.status_code}")
        if content.startswith(GZIP_MAGIC) or not content.lstrip().startswith(b"<xml"):
            return content
        try:
            return parse_fields(content)
        except XmlProblem as exc:
            raise ResponseNotVerified(f"POST {path}: the error answer is not readable ({exc.reason})") from None

    def _post(self, path: str, body: bytes, *, reference: str) -> requests.Response:
        secure = path.startswith(SECURE_PREFIX)
        session = self.secure_session() if secure else self.session
        headers = {"Content-Type": XML_CONTENT_TYPE, "Accept": "text/xml, application/xml", "User-Agent": USER_AGENT}
        try:
            # Never verify=False: the server is always checked (§10.3).
            return session.post(f"{self.api_base}{path}", data=body, headers=headers, timeout=self.timeout,
                                verify=self.ca_bundle or True, allow_redirects=False)  # fmt: skip
        except requests.exceptions.SSLError as exc:
            logger.error("wechatpay v2 %s for %s: TLS failed (%s)", path, reference, _tls_reason(exc))
            raise GatewayUnavailable(f"POST {path}: TLS failed ({_tls_reason(exc)})") from exc
        except requests.Timeout as exc:
            logger.warning("wechatpay v2 %s for %s timed out", path, reference)
            raise GatewayUnavailable(f"POST {path}: timed out ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            logger.warning("wechatpay v2 %s for %s failed: %s", path, reference, type(exc).__name__)
            raise GatewayUnavailable(f"POST {path}: {type(exc).__name__}") from exc

    def _verified(self, response: requests.Response, path: str, reference: str) -> dict[str, str]:
        if response.status_code != 200:
            logger.warning("wechatpay v2 %s for %s: HTTP %s", path, reference, response.status_code)
            raise GatewayUnavailable(f"POST {path}: HTTP {response.status_code}")
        try:
            answer = parse_fields(response.content)
        except XmlProblem as exc:
            logger.error("wechatpay v2 %s for %s: unreadable answer refused: %s", path, reference, exc.reason)
            raise ResponseNotVerified(f"POST {path}: {exc.reason}") from None
        return_code = answer.get("return_code")
        if return_code == FAIL:
            message = answer.get("return_msg", "")[:_MAX_MESSAGE_CHARS]
            logger.warning("wechatpay v2 %s for %s: return_code FAIL %s", path, reference, message)
            raise GatewayRejected(message, code=FAIL)
        if return_code != SUCCESS:
            raise ResponseNotVerified(f"POST {path}: the answer has no return_code")
        try:
            # §10.1: SUCCESS answers are signed, unknown new fields too; with
            # the request's algorithm (§12.16).
            check_signed(answer, self.merchant.api_key, self.merchant.sign_type)
        except SignatureProblem as exc:
            logger.error("wechatpay v2 %s for %s: answer not verified: %s", path, reference, exc.reason)
            raise ResponseNotVerified(f"POST {path}: {exc.reason}") from None
        for name, ours in (("appid", self.merchant.appid), ("mch_id", self.merchant.mch_id)):
            if answer.get(name, ours) != ours:
                raise ResponseNotVerified(f"POST {path}: the answer names another {name}")
        return answer


def _tls_reason(exc: Exception) -> str:
    return str(exc)[:_MAX_MESSAGE_CHARS] or type(exc).__name__
