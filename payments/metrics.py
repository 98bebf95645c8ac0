"""Prometheus metrics of the payment path (served at /metrics)."""
from prometheus_client import Counter

notifications = Counter(
    "shop_gateway_notifications_total",
    "Gateway notifications processed, by gateway and outcome.",
    ["gateway", "outcome"],
)
payments_succeeded = Counter(
    "shop_payments_succeeded_total",
    "Payments that paid an order, by gateway.",
    ["gateway"],
)
payments_needing_refund = Counter(
    "shop_payments_needing_refund_total",
    "Payments that succeeded when their order could not take them (duplicate or late).",
    ["gateway", "reason"],
)
