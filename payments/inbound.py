"""Incoming gateway notifications, from the HTTP request to the inbox's answer.

Before the inbox sees a notification: the gateway must be enabled (else
404), its source address must be allowed when an allowlist is configured
for it (NOTIFY_ALLOWED_IPS; refused in the provider's error format and
logged), its body must fit NOTIFICATION_MAX_BODY_BYTES (recorded as
rejected by its size alone), and only the headers its protocol reads
(`Gateway.notification_headers`) are kept: Cookie, Authorization and
anything unknown never reach the database, the admin or a log.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from payments.exceptions import GatewayNotConfigured
from payments.gateways import get_gateway
from payments.gateways.base import Acknowledgement, Gateway, RawNotification
from payments.models import NotificationKind
from payments.services import notification_accept, notification_refuse_oversized
from shop.client_ip import address_in, client_ip, parse_networks

logger = logging.getLogger(__name__)


def notification_response(request: HttpRequest, *, gateway_code: str, kind: str) -> HttpResponse:
    """Answer a gateway's notification POST with the provider's own acknowledgement or error."""
    try:
        gateway = get_gateway(gateway_code)
    except GatewayNotConfigured as exc:
        raise Http404(gateway_code) from exc
    if kind == NotificationKind.REFUND and not gateway.capabilities.notifies_refunds:
        raise Http404(gateway_code)
    source = client_ip(request)
    if not notify_source_allowed(gateway_code, source):
        logger.warning("%s %s notification from %s refused: not in the notify allowlist", gateway_code, kind, source)
        return _http(gateway.reject("source address not allowed"))
    raw = RawNotification(
        body=b"",
        headers=protocol_headers(request, gateway),
        received_at=timezone.now(),
        content_type=request.content_type or "",
        remote_addr=source,
    )
    limit = settings.NOTIFICATION_MAX_BODY_BYTES
    declared = _content_length(request)
    body = request.read(limit + 1) if declared <= limit else b""
    if declared > limit or len(body) > limit:
        return _http(notification_refuse_oversized(gateway_code=gateway_code, kind=kind, raw=raw,
                                                   size=max(declared, len(body))))
    raw = RawNotification(body=body, headers=raw.headers, received_at=raw.received_at,
                          content_type=raw.content_type, remote_addr=raw.remote_addr)
    return _http(notification_accept(gateway_code=gateway_code, kind=kind, raw=raw))


def protocol_headers(request: HttpRequest, gateway: Gateway) -> dict[str, str]:
    wanted = gateway.notification_headers
    return {name: value for name, value in request.headers.items() if name.lower() in wanted}


def notify_source_allowed(gateway_code: str, address: str) -> bool:
    """True without an allowlist for the gateway; else the address must be in one of its CIDRs."""
    cidrs = settings.NOTIFY_ALLOWED_IPS.get(gateway_code) or ()
    if not cidrs:
        return True
    return address_in(address, parse_networks(tuple(cidrs)))


def _content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _http(ack: Acknowledgement) -> HttpResponse:
    return HttpResponse(ack.body, status=ack.status, content_type=ack.content_type)
