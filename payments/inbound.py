"""Incoming gateway HTTP requests as the gateway interface's values."""
from django.http import HttpRequest
from django.utils import timezone

from payments.gateways.base import RawNotification


def raw_notification(request: HttpRequest) -> RawNotification:
    """Everything a notification brought, kept raw for the inbox and the adapter."""
    return RawNotification(
        body=request.body,
        headers=dict(request.headers),
        received_at=timezone.now(),
        content_type=request.content_type or "",
        remote_addr=request.META.get("REMOTE_ADDR", ""),
    )
