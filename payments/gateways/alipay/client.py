"""Server-to-server calls to the Alipay OpenAPI v2 gateway (`gateway.do`, RSA2).

Builds and signs the common parameters (docs/gateways-alipay-unionpay.md A3, A4),
POSTs them form-encoded (A2), verifies the answer over its raw node text
before reading it (A5) and sorts result codes into "done", "outcome
unknown" and "refused" (A6, A14). HTTP and `requests` types stay in here.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.exceptions import GatewayRejected, GatewayUnavailable, ResponseNotVerified
from payments.gateways.alipay.formats import format_beijing
from payments.gateways.alipay.signing import (
    SIGN_CHARSET,
    SIGN_TYPE,
    request_signing_text,
    sign,
    split_response,
    verify,
)

logger = logging.getLogger(__name__)

API_VERSION = "1.0"
FORMAT = "JSON"
CHARSET = SIGN_CHARSET
FORM_CONTENT_TYPE = f"application/x-www-form-urlencoded;charset={CHARSET}"

# A6 result codes.
CODE_SUCCESS = "10000"
# Outcome unknown: repeat the same request or query (A6, A14).
CODES_OUTCOME_UNKNOWN = frozenset({"20000", "40005"})
SUB_CODES_OUTCOME_UNKNOWN = frozenset({"ACQ.SYSTEM_ERROR", "isp.unknow-error", "aop.unknow-error"})
# Final refusals of this request: fix something before asking again.
CODES_REFUSED = frozenset({"20001", "40001", "40002", "40003", "40004", "40006"})


def gateway_form_url(gateway_url: str) -> str:
    """Where requests go: Alipay reads `charset` from the query string to decode the body."""
    separator = "&" if "?" in gateway_url else "?"
    return f"{gateway_url}{separator}charset={CHARSET}"


def biz_content_json(biz_content: Mapping[str, Any]) -> str:
    """Serialise once, compactly; this exact string is both signed and sent (A4 step 4)."""
    return json.dumps(biz_content, ensure_ascii=False, separators=(",", ":"))


def signed_params(
    *,
    app_id: str,
    method: str,
    biz_content: Mapping[str, Any],
    private_key: rsa.RSAPrivateKey,
    now: datetime,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every parameter of one request, `sign` included; empty values are never sent."""
    params = {
        "app_id": app_id,
        "method": method,
        "format": FORMAT,
        "charset": CHARSET,
        "sign_type": SIGN_TYPE,
        "timestamp": format_beijing(now),
        "version": API_VERSION,
        "biz_content": biz_content_json(biz_content),
        **(extra or {}),
    }
    for name, value in params.items():
        if not isinstance(value, str):
            raise TypeError(f"Alipay parameter {name} must be a string")
    # python-alipay-sdk would sign and send an empty value while the Java
    # SDK skips it: sending none keeps both readings of A4 identical.
    params = {name: value for name, value in params.items() if value != ""}
    params["sign"] = sign(private_key, request_signing_text(params))
    return params


def post(
    session: requests.Session,
    gateway_url: str,
    params: Mapping[str, str],
    *,
    timeout: tuple[float, float],
    method: str,
    reference: str,
) -> str:
    """POST the signed parameters; the answer's text, decoded as it was requested (A5 step 1)."""
    try:
        response = session.post(
            gateway_form_url(gateway_url),
            data=dict(params),
            headers={"Content-Type": FORM_CONTENT_TYPE},
            timeout=timeout,
        )
    except requests.Timeout as exc:
        logger.warning("alipay %s for %s timed out", method, reference)
        raise GatewayUnavailable(f"{method}: timed out ({type(exc).__name__})") from exc
    except requests.RequestException as exc:
        logger.warning("alipay %s for %s failed: %s", method, reference, type(exc).__name__)
        raise GatewayUnavailable(f"{method}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        logger.warning("alipay %s for %s: HTTP %s", method, reference, response.status_code)
        raise GatewayUnavailable(f"{method}: HTTP {response.status_code}")
    try:
        # Not `response.text`: without a charset header requests would guess
        # ISO-8859-1, and the signature covers the UTF-8 bytes.
        return response.content.decode(CHARSET)
    except UnicodeDecodeError as exc:
        raise GatewayUnavailable(f"{method}: the answer is not {CHARSET}") from exc


def verified_node(text: str, *, method: str, public_key: rsa.RSAPublicKey, reference: str) -> dict[str, Any]:
    """The answer's business node, read only after its raw text verified (A5)."""
    try:
        envelope = split_response(text, method)
    except ValueError as exc:
        logger.warning("alipay %s for %s: unreadable answer (%s)", method, reference, exc)
        raise GatewayUnavailable(f"{method}: unreadable answer ({exc})") from exc
    if envelope.sign:
        if not verify(public_key, envelope.node_text, envelope.sign):
            logger.error("alipay %s for %s: the answer's signature does not verify", method, reference)
            raise ResponseNotVerified(f"{method}: the answer's signature does not verify")
        return _parse_node(envelope.node_text, method)
    # A5 step 5: no sign means error information only, never a business
    # result. Read it for the operator's log, and refuse to act on it.
    unverified = _parse_node(envelope.node_text, method)
    code = str(unverified.get("code", ""))
    if code == CODE_SUCCESS:
        logger.error("alipay %s for %s: unsigned success answer", method, reference)
        raise ResponseNotVerified(f"{method}: a success answer without a signature")
    detail = " ".join(str(unverified.get(key, "")) for key in ("code", "sub_code", "sub_msg")).strip()
    logger.warning("alipay %s for %s: unsigned error answer (%s)", method, reference, detail)
    raise GatewayUnavailable(f"{method}: unsigned error answer, not acted upon (unverified: {detail})")


def _parse_node(node_text: str, method: str) -> dict[str, Any]:
    try:
        # Amounts are strings on the wire; should a number appear, keep its
        # text rather than a float.
        node = json.loads(node_text, parse_float=str, parse_constant=_no_constant)
    except ValueError as exc:
        raise GatewayUnavailable(f"{method}: the answer's node is not JSON") from exc
    if not isinstance(node, dict):
        raise GatewayUnavailable(f"{method}: the answer's node is not an object")
    return node


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def checked_result(node: Mapping[str, Any], *, method: str, reference: str) -> dict[str, Any]:
    """The node when `code` is 10000; otherwise GatewayUnavailable or GatewayRejected (A6)."""
    code = str(node.get("code", ""))
    if code == CODE_SUCCESS:
        return dict(node)
    sub_code = str(node.get("sub_code", ""))
    message = str(node.get("sub_msg") or node.get("msg") or "")
    logger.info("alipay %s for %s: code=%s sub_code=%s", method, reference, code, sub_code)
    if code in CODES_OUTCOME_UNKNOWN or sub_code in SUB_CODES_OUTCOME_UNKNOWN:
        raise GatewayUnavailable(f"{method}: {code} {sub_code} {message}".strip())
    if code in CODES_REFUSED:
        raise GatewayRejected(message, code=code, sub_code=sub_code)
    raise GatewayUnavailable(f"{method}: unexpected code {code!r} {sub_code}".strip())


def call(
    session: requests.Session,
    gateway_url: str,
    params: Mapping[str, str],
    *,
    timeout: tuple[float, float],
    public_key: rsa.RSAPublicKey,
    reference: str,
) -> dict[str, Any]:
    """Send signed params; return the verified node of a 10000 answer, or raise (A5, A6)."""
    method = params["method"]
    text = post(session, gateway_url, params, timeout=timeout, method=method, reference=reference)
    node = verified_node(text, method=method, public_key=public_key, reference=reference)
    return checked_result(node, method=method, reference=reference)
