"""Prometheus metrics of refunds and of the money invariants (served at /metrics)."""
from prometheus_client import Counter, Gauge

refunds_requested = Counter("shop_refunds_requested_total", "Refund applications, by gateway.", ["gateway"])
refunds_finished = Counter(
    "shop_refunds_finished_total", "Refunds that reached an end state, by gateway and status.", ["gateway", "status"]
)
money_invariant_violations = Gauge(
    "shop_money_invariant_violations", "Open money-invariant violations found by the last check.", ["kind"]
)
