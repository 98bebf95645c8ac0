"""Prometheus metrics of refunds and of the money invariants (served at /metrics)."""
from prometheus_client import Counter, Gauge

refunds_requested = Counter("shop_refunds_requested_total", "Refund applications, by gateway.", ["gateway"])
refunds_finished = Counter(
    "shop_refunds_finished_total", "Refunds that reached an end state, by gateway and status.", ["gateway", "status"]
)
# Set by the periodic check on a worker; in multiprocess mode the most
# recent value any process set is exported (config/metrics.py).
money_invariant_violations = Gauge(
    "shop_money_invariant_violations", "Open money-invariant violations found by the last check.", ["kind"],
    multiprocess_mode="mostrecent",
)
refunds_unsubmitted_minor = Gauge(
    "shop_refunds_unsubmitted_minor",
    "Fen reserved by approved refunds not sent to their gateway past REFUND_STALLED_ALARM_AFTER_SECONDS.",
    multiprocess_mode="mostrecent",
)
