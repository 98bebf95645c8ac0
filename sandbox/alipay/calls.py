"""A verified request to /alipay/gateway.do, as the method handlers receive it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest


@dataclass(frozen=True)
class AlipayCall:
    """Its common parameters (signature checked) and its decoded biz_content."""

    method: str
    params: dict[str, str]
    biz: dict[str, Any]
    request: HttpRequest
