"""The WeChat Pay provider as the core sees it: its notification format, its
lifecycle rules and the fault targets of its calls (README.md lists them).

Notifications: `wechatpay.notify` (payments) and `wechatpay.refund_notify`
(refunds) take the common modes, plus `sign_probe` (a `WECHATPAY/SIGNTEST/`
probe before the real notification, §4.4).

Calls (`wechatpay.native`, `.h5`, `.query`, `.close`, `.refund`,
`.refund_query`, `.bill`): `error` answers `code` (default SYSTEM_ERROR)
with `status` (default: the code's documented status, else 500) and
optional `message`, without doing the work; `timeout` sleeps `seconds`,
then answers 500 SYSTEM_ERROR, work not done; `slow` does the work and
answers normally, `seconds` late. For refunds also
`crash_after` (refund done, then the connection dropped, or the answer
delayed by `seconds`) and `processing` (`queries`: the new refund stays
PROCESSING for that many refund queries, or until the runtime setting
refund_settle_after_seconds ends it by time). For the bill also `bad_hash`
(the tradebill answer announces a wrong hash_value), `expired_link` (the
link handed out has expired already), `truncate` (the gzip served is cut in
half) and `wrong_encoding` (the file in GBK, its hash announced for those
bytes). `wechatpay.bill_content` rules stand until cleared and alter bills:
a row left out, doubled, changed, added (`omit`, `duplicate`,
`alter_amount`, `extra_line`), its currency changed (`alter_currency`), a
row of another merchant (`foreign_merchant`), a summary that disagrees with
the rows (`bad_totals`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.faults import (
    FaultRuleInvalid,
    bill_day_rule,
    bill_line_rule,
    currency_rule,
    no_params,
    optional_seconds_param,
    queries_param,
    seconds_param,
)
from sandbox.providers import ParamsCheck, Provider
from sandbox.wechatpay.errors import CODES
from sandbox.wechatpay.notifications import WechatPayNotificationFormat
from sandbox.wechatpay.trades import wechatpay_refund_settle

CODE_PATTERN_MAX = 64


def error_param(params: Mapping[str, Any]) -> dict[str, Any]:
    """`code` (default SYSTEM_ERROR), `status` (4xx/5xx), optional `message`."""
    code = str(params.get("code", "SYSTEM_ERROR"))
    if not code or len(code) > CODE_PATTERN_MAX:
        raise FaultRuleInvalid(f"code must be 1 to {CODE_PATTERN_MAX} characters")
    status = params.get("status", CODES.get(code, (500, ""))[0])
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise FaultRuleInvalid("status must be an HTTP error status (400-599)")
    checked: dict[str, Any] = {"code": code, "status": status}
    if "message" in params:
        checked["message"] = str(params["message"])
    return checked


def _call_modes(**extra: ParamsCheck) -> dict[str, ParamsCheck]:
    return {"error": error_param, "timeout": seconds_param, "slow": seconds_param, **extra}


WECHATPAY = Provider(
    code="wechatpay",
    notification_format=WechatPayNotificationFormat(),
    call_faults={
        "wechatpay.native": _call_modes(),
        "wechatpay.h5": _call_modes(),
        "wechatpay.query": _call_modes(),
        "wechatpay.close": _call_modes(),
        "wechatpay.refund": _call_modes(crash_after=optional_seconds_param, processing=queries_param),
        "wechatpay.refund_query": _call_modes(),
        "wechatpay.bill": _call_modes(bad_hash=no_params, expired_link=no_params, truncate=no_params,
                                      wrong_encoding=no_params),
        "wechatpay.bill_content": {
            "omit": bill_line_rule(needs_trade=True),
            "duplicate": bill_line_rule(needs_trade=True),
            "alter_amount": bill_line_rule(needs_trade=True, amount_field="delta_minor"),
            "extra_line": bill_line_rule(needs_trade=False, amount_field="amount_minor"),
            "alter_currency": currency_rule,
            "foreign_merchant": bill_line_rule(needs_trade=True),
            "bad_totals": bill_day_rule(amount_field="delta_minor"),
        },
    },
    refund_settle=wechatpay_refund_settle,
    standing_targets=frozenset({"wechatpay.bill_content"}),
    notify_targets={"payment": "wechatpay.notify", "refund": "wechatpay.refund_notify"},
    forgery_modes={"sign_probe": ("sign_probe",)},
    # §6.1: past time_expire the order cannot be paid but reads NOTPAY
    # until the merchant closes it.
    expiry_closes_trade=False,
    # So that PROCESSING is seen: the create answer and the first refund
    # query say PROCESSING, the second settles it.
    default_refund_processing_queries=1,
    # Real WeChat Pay ends a refund by itself after a while and notifies
    # REFUND.SUCCESS (--refund-settle-after, default 10 s).
    refunds_settle_by_themselves=True,
)
