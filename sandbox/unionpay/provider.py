"""The UnionPay provider as the core sees it: its notification format, its
lifecycle rules and the fault targets of its calls (README.md lists them).

Notifications: `unionpay.notify` (consumes) and `unionpay.refund_notify`
(refunds) take the common modes; `forge` knows the variants of
sandbox/unionpay/notifications.py.

Calls (`unionpay.front`, `.query`, `.refund`, `.refund_query`, `.file`):
`error` answers respCode `code` (default 06, system busy) with optional
`message`, signed, without doing the work (the front consume shows its
error page); `timeout` sleeps `seconds`, then answers 03 (communication
timeout), work not done. For refunds also `crash_after` (refund done, then
the connection dropped, or the answer delayed by `seconds`), `processing`
(`queries`: accepted, in flight for that many queries, then succeeded) and
`fail` (`queries`: accepted, then failed for good at that query:
origRespCode 01, no notification). `unionpay.file_content` rules stand
until cleared and alter settlement files.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sandbox.faults import (
    FaultRuleInvalid,
    bill_line_rule,
    optional_seconds_param,
    queries_param,
    seconds_param,
)
from sandbox.providers import ParamsCheck, Provider
from sandbox.unionpay.notifications import UnionPayNotificationFormat
from sandbox.unionpay.trades import unionpay_refund_settle


def error_param(params: Mapping[str, Any]) -> dict[str, Any]:
    """`code` (a two-character respCode, default 06), optional `message`."""
    code = str(params.get("code", "06"))
    if not re.fullmatch(r"[0-9A-Z]{2}", code) or code == "00":
        raise FaultRuleInvalid("code must be a respCode other than 00, e.g. 06, 35, 99")
    checked: dict[str, Any] = {"code": code}
    if "message" in params:
        checked["message"] = str(params["message"])
    return checked


def _call_modes(**extra: ParamsCheck) -> dict[str, ParamsCheck]:
    return {"error": error_param, "timeout": seconds_param, **extra}


UNIONPAY = Provider(
    code="unionpay",
    notification_format=UnionPayNotificationFormat(),
    call_faults={
        "unionpay.front": _call_modes(),
        "unionpay.query": _call_modes(),
        "unionpay.refund": _call_modes(crash_after=optional_seconds_param, processing=queries_param,
                                       fail=queries_param),
        "unionpay.refund_query": _call_modes(),
        "unionpay.file": _call_modes(),
        "unionpay.file_content": {
            "omit": bill_line_rule(needs_trade=True),
            "duplicate": bill_line_rule(needs_trade=True),
            "alter_amount": bill_line_rule(needs_trade=True, amount_field="delta_minor"),
            "extra_line": bill_line_rule(needs_trade=False, amount_field="amount_minor"),
        },
    },
    refund_settle=unionpay_refund_settle,
    standing_targets=frozenset({"unionpay.file_content"}),
    notify_targets={"payment": "unionpay.notify", "refund": "unionpay.refund_notify"},
    # B6: after payTimeout UnionPay refuses the payment; a consume the shopper
    # never submitted stays unknown (34), nothing closes.
    expiry_closes_trade=False,
    # So that in flight is seen: the accept and the first query say so (05),
    # the second query settles it.
    default_refund_processing_queries=1,
    # A refund's result comes later by itself, with its back notification.
    refunds_settle_by_themselves=True,
)
