"""Signed JSON answers of /alipay/gateway.do (docs/gateways-alipay-unionpay.md A5).

The node text is serialised once, signed, and spliced into the envelope, so
the signature covers exactly the bytes sent. Like Alipay, `/` is written
`\\/` and non-ASCII text is sent raw (UTF-8), so a client that re-serialises
the node instead of cutting the raw substring fails to verify.
"""
from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

from sandbox.alipay.keyring import gateway_private_key
from sandbox.alipay.signing import rsa2_sign

ERROR_NODE = "error_response"
CONTENT_TYPE = "application/json;charset=utf-8"


def node_name(method: str) -> str:
    """alipay.trade.query -> alipay_trade_query_response."""
    return method.replace(".", "_") + "_response"


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")


def envelope_text(node_key: str, node: dict[str, Any]) -> str:
    node_text = json_text(node)
    sign = rsa2_sign(node_text, gateway_private_key())
    return "{" + json_text(node_key) + ":" + node_text + ',"sign":' + json_text(sign) + "}"


def envelope_response(node_key: str, node: dict[str, Any]) -> HttpResponse:
    return HttpResponse(envelope_text(node_key, node).encode("utf-8"), content_type=CONTENT_TYPE)
