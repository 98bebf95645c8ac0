"""Reconciliation: each gateway's daily bill matched against our payments and refunds.

A Statement is one gateway's bill for one bill day (the gateway's own
window: Alipay's Beijing calendar day, WeChat Pay's with refunds on the day
applied for, UnionPay's 23:00 to 23:00). Its lifecycle is STATEMENT_TRANSITIONS
(pending → fetched → matched, no_bill, failed); a Discrepancy's is
DISCREPANCY_TRANSITIONS (carried, open → healed | resolved | accepted |
cleared). Lock order: a statement, then an earlier day's statement, then
discrepancies; never held while a payment or refund service runs.

    statements.py     statement_reconcile (download, keep, load, match, heal; the
                      run history), statement_sign_off, the gateways with bills
    loading.py        lines_replace: a bill's lines into the line table (COPY)
    matching.py       statement_match_lines: set-based joins, the one definition
                      of each discrepancy kind (classify_payment, classify_refund)
    discrepancies.py  discrepancies_record (idempotent re-runs, reopening a
                      signed-off day), carried_resolve (the cross-day carry),
                      discrepancy_resolve, discrepancy_accept
    healing.py        discrepancy_heal through payment_sync and refund_poll
    schedule.py       reconciliation_run_due: the daily job, the late alarm
    lifecycle.py      the two lifecycles, moved under a lock with events

Callers import from `reconciliation.services`; the modules are the map.
"""
from reconciliation.services.discrepancies import (
    carried_resolve,
    discrepancies_record,
    discrepancy_accept,
    discrepancy_resolve,
)
from reconciliation.services.healing import RECONCILIATION, discrepancies_heal, discrepancy_heal
from reconciliation.services.lifecycle import (
    DISCREPANCY_LIFECYCLE,
    STATEMENT_LIFECYCLE,
    discrepancy_move,
    statement_move,
)
from reconciliation.services.loading import lines_replace
from reconciliation.services.matching import classify_payment, classify_refund, statement_match_lines
from reconciliation.services.schedule import reconciliation_run_due, statement_alarm_if_late
from reconciliation.services.statements import (
    SCHEDULE,
    last_bill_day,
    statement_for,
    statement_gateway,
    statement_gateways,
    statement_reconcile,
    statement_sign_off,
)

__all__ = [
    "DISCREPANCY_LIFECYCLE",
    "RECONCILIATION",
    "SCHEDULE",
    "STATEMENT_LIFECYCLE",
    "carried_resolve",
    "classify_payment",
    "classify_refund",
    "discrepancies_heal",
    "discrepancies_record",
    "discrepancy_accept",
    "discrepancy_heal",
    "discrepancy_move",
    "discrepancy_resolve",
    "last_bill_day",
    "lines_replace",
    "reconciliation_run_due",
    "statement_alarm_if_late",
    "statement_for",
    "statement_gateway",
    "statement_gateways",
    "statement_match_lines",
    "statement_move",
    "statement_reconcile",
    "statement_sign_off",
]
