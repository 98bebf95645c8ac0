"""Prometheus metrics of the kernel: the outbox (served at /metrics)."""
from prometheus_client import Gauge

# Set by the periodic relay on a worker; exported with the most recent value
# in multiprocess mode (config/metrics.py).
outbox_messages = Gauge(
    "shop_outbox_messages",
    "Outbox messages not completed: due (waiting for the relay) or given_up (an alarm).",
    ["state"],
    multiprocess_mode="mostrecent",
)
outbox_oldest_due_seconds = Gauge(
    "shop_outbox_oldest_due_seconds",
    "Age of the oldest outbox message still waiting for delivery (0 when none).",
    multiprocess_mode="mostrecent",
)
