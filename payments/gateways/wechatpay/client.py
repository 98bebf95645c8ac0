"""Signed HTTP calls to WeChat Pay API v3 and the verification of their answers.

Follows docs/gateways-wechatpay.md §3 (sign the path and query exactly as sent,
and the exact body bytes), §4 (verify every 2xx, including an empty 204,
before reading it) and §8 (read `code`/`message` of error answers, which
are not guaranteed to be signed, and sort them into "outcome unknown" and
"refused"). `requests` types stay in here.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.exceptions import GatewayRejected, GatewayUnavailable, ResponseNotVerified
from payments.gateways.wechatpay.signing import (
    SignatureProblem,
    authorization,
    check_signed,
    request_message,
    sign,
)

logger = logging.getLogger(__name__)

USER_AGENT = "django-shop-wechatpay/1.0 (+python-requests; API v3)"
JSON_CONTENT_TYPE = "application/json"
HEADER_REQUEST_ID = "Request-ID"

# §8: the outcome is unknown; repeat the same request (same out_trade_no /
# out_refund_no) or query. RULE_LIMIT is "back off" too (§8, §6.5 频率限制).
CODES_OUTCOME_UNKNOWN = frozenset({"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "RULE_LIMIT"})
# Statuses that say "try again later" even without a readable code.
STATUSES_OUTCOME_UNKNOWN = frozenset({408, 429})

_MAX_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class Answer:
    """A verified 2xx answer: its status and JSON object ({} for an empty 204)."""

    status: int
    data: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""


def json_body(payload: Mapping[str, Any]) -> bytes:
    """Serialise once, compactly, UTF-8; these exact bytes are signed and sent (§3.1 step 5)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def path_segment(value: str) -> str:
    """A path parameter, percent-encoded so that requests sends it unchanged."""
    return quote(value, safe="")


def parse_json_object(data: bytes) -> dict[str, Any]:
    """A UTF-8 JSON object; ValueError otherwise (also for NaN, deep nesting, 5000-digit ints).

    Numbers with a fraction become Decimal: no float ever reaches an amount.
    """
    try:
        value = json.loads(data.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constant)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(type(exc).__name__) from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class DownloadRefused(GatewayUnavailable):
    """A bill download link answered with a refusal (expired, used, unknown): ask for a new link."""


class ApiClient:
    """One merchant's signed calls to one API base (`https://api.mch.weixin.qq.com` or the sandbox's)."""

    def __init__(
        self,
        *,
        session: requests.Session,
        timeout: tuple[float, float],
        api_base: str,
        mchid: str,
        serial_no: str,
        private_key: rsa.RSAPrivateKey,
        public_key: rsa.RSAPublicKey,
        public_key_id: str,
        clock: Callable[[], datetime],
        nonce: Callable[[], str],
    ) -> None:
        self.session = session
        self.timeout = timeout
        self.api_base = api_base.rstrip("/")
        self.mchid = mchid
        self.serial_no = serial_no
        self.private_key = private_key
        self.public_key = public_key
        self.public_key_id = public_key_id
        self.clock = clock
        self.nonce = nonce

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """The full URL: the base (with its own path prefix) + the v3 path + the query."""
        url = f"{self.api_base}{path}"
        if query:
            url = f"{url}?{urlencode(query, quote_via=quote, safe='')}"
        return url

    def call(
        self,
        method: str,
        path: str,
        *,
        reference: str,
        query: Mapping[str, str] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Answer:
        """Send one signed call; the verified answer, or raise (§3, §4, §8).

        Raises GatewayUnavailable (transport failure, 5xx, SYSTEM_ERROR,
        FREQUENCY_LIMITED, RULE_LIMIT), ResponseNotVerified (a 2xx whose
        signature fails) and GatewayRejected(code=<HTTP status>,
        sub_code=<code>, message=<message>) for every other refusal.
        """
        label = f"{method} {path}"
        body = json_body(payload) if payload is not None else b""
        response = self._send(method, self.url(path, query), body, label=label, reference=reference)
        request_id = response.headers.get(HEADER_REQUEST_ID, "")
        if not 200 <= response.status_code < 300:
            raise self._error(response, label=label, reference=reference)
        try:
            check_signed(
                lambda name: response.headers.get(name, ""),
                response.content,
                public_key=self.public_key,
                public_key_id=self.public_key_id,
                now=self.clock(),
            )
        except SignatureProblem as exc:
            logger.error("wechatpay %s for %s: answer not verified: %s (Request-ID %s)",
                         label, reference, exc.reason, request_id)
            raise ResponseNotVerified(f"{label}: {exc.reason}") from None
        if not response.content:
            return Answer(status=response.status_code, request_id=request_id)
        try:
            data = parse_json_object(response.content)
        except ValueError as exc:
            raise GatewayUnavailable(f"{label}: the verified answer is not a JSON object ({exc})") from None
        return Answer(status=response.status_code, data=data, request_id=request_id)

    def download(self, url: str, *, reference: str) -> bytes:
        """GET a bill `download_url`, signed over its own path and query; the bytes, unverified.

        §6.8 step 3: the file carries no WeChat signature (the SHA-1 from
        the verified tradebill answer protects it instead). Signed like any
        call even when its host is not the API base's.
        """
        label = "GET download_url"
        response = self._send("GET", url, b"", label=label, reference=reference)
        if not 200 <= response.status_code < 300:
            # The link expires within minutes (§12.4): whatever the refusal,
            # the remedy is a new tradebill call, so the outcome is "retry".
            code, message = error_code_and_message(response.content)
            logger.warning("wechatpay %s for %s: HTTP %s %s %s", label, reference, response.status_code, code, message)
            raise DownloadRefused(f"{label}: HTTP {response.status_code} {code}: {message}".strip())
        return response.content

    def _send(self, method: str, url: str, body: bytes, *, label: str, reference: str) -> requests.Response:
        headers = {"Accept": JSON_CONTENT_TYPE, "User-Agent": USER_AGENT, "Wechatpay-Serial": self.public_key_id}
        if body:
            headers["Content-Type"] = JSON_CONTENT_TYPE
        prepared = self.session.prepare_request(
            requests.Request(method, url, headers=headers, data=body or None)
        )
        # Sign what goes on the request line: requests may re-quote a URL,
        # and WeChat checks the path and query exactly as received (§3.1).
        timestamp = str(int(self.clock().timestamp()))
        nonce = self.nonce()
        message = request_message(method, prepared.path_url, timestamp, nonce, body)
        prepared.headers["Authorization"] = authorization(
            mchid=self.mchid,
            nonce=nonce,
            signature=sign(self.private_key, message),
            timestamp=timestamp,
            serial_no=self.serial_no,
        )
        # prepare_request() always sets the URL; PreparedRequest declares it
        # Optional only for a request not yet prepared.
        assert prepared.url is not None
        settings = self.session.merge_environment_settings(prepared.url, {}, None, None, None)
        try:
            # No redirects: a signed call answered elsewhere is not an answer.
            return self.session.send(prepared, timeout=self.timeout, allow_redirects=False, **settings)
        except requests.Timeout as exc:
            logger.warning("wechatpay %s for %s timed out", label, reference)
            raise GatewayUnavailable(f"{label}: timed out ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            logger.warning("wechatpay %s for %s failed: %s", label, reference, type(exc).__name__)
            raise GatewayUnavailable(f"{label}: {type(exc).__name__}") from exc

    def _error(self, response: requests.Response, *, label: str, reference: str) -> Exception:
        """§8: key on `code`; 5xx and "busy" codes leave the outcome unknown."""
        status = response.status_code
        code, message = error_code_and_message(response.content)
        request_id = response.headers.get(HEADER_REQUEST_ID, "")
        logger.warning("wechatpay %s for %s: HTTP %s %s %s (Request-ID %s)",
                       label, reference, status, code, message, request_id)
        if code in CODES_OUTCOME_UNKNOWN or status >= 500 or status in STATUSES_OUTCOME_UNKNOWN:
            return GatewayUnavailable(f"{label}: HTTP {status} {code}: {message}".strip())
        if 300 <= status < 400:
            return GatewayUnavailable(f"{label}: HTTP {status} redirect, not followed")
        return GatewayRejected(message, code=str(status), sub_code=code)


def error_code_and_message(content: bytes) -> tuple[str, str]:
    """`code` and `message` of an error body (§8), or ("", <short text>) when it has none."""
    try:
        data = parse_json_object(content)
    except ValueError:
        return "", content[:_MAX_MESSAGE_CHARS].decode("utf-8", "replace")
    code = data.get("code")
    message = data.get("message")
    return (
        code[:64] if isinstance(code, str) else "",
        message[:_MAX_MESSAGE_CHARS] if isinstance(message, str) else "",
    )
