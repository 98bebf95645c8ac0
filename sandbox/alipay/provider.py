"""The Alipay provider as the core sees it: its notification format and the
fault targets of its calls (README.md lists them with examples).

Calls: `error` answers a chosen code/sub_code without doing the work;
`timeout` sleeps `seconds`, then answers 20000 isp.unknow-error, work not
done; `slow` does the work and answers normally, `seconds` late (a gateway
that is slow but succeeds: `make bench` starts payments behind it). For refunds also `crash_after` (refund done, then the connection is
dropped, or the answer delayed by `seconds`) and `processing` (refund
accepted with fund_change=N and left unsettled for `queries` refund
queries, or until refund_settle_after_seconds, when set, settles it by time).
For the bill URL also `expired_link` (the link handed out has expired
already), `truncate` (the ZIP served is cut in half) and `wrong_encoding`
(its CSV in UTF-8, not GBK). `alipay.bill_content` rules stand until
cleared and alter bills: a line left out, doubled, changed, added
(`omit`, `duplicate`, `alter_amount`, `extra_line`), another merchant's
account in the header (`foreign_merchant`), footer totals that disagree
with the rows (`bad_totals`).
"""
from __future__ import annotations

from sandbox.alipay.notifications import AlipayNotificationFormat
from sandbox.alipay.trades import alipay_refund_settle
from sandbox.faults import (
    bill_day_rule,
    bill_line_rule,
    error_param,
    no_params,
    optional_seconds_param,
    queries_param,
    seconds_param,
)
from sandbox.providers import ParamsCheck, Provider


def _call_modes(**extra: ParamsCheck) -> dict[str, ParamsCheck]:
    return {"error": error_param("20000", "isp.unknow-error"), "timeout": seconds_param, "slow": seconds_param,
            **extra}


ALIPAY = Provider(
    code="alipay",
    notification_format=AlipayNotificationFormat(),
    call_faults={
        "alipay.precreate": _call_modes(),
        "alipay.query": _call_modes(),
        "alipay.close": _call_modes(),
        "alipay.refund": _call_modes(crash_after=optional_seconds_param, processing=queries_param),
        "alipay.refund_query": _call_modes(),
        "alipay.bill": _call_modes(expired_link=no_params, truncate=no_params, wrong_encoding=no_params),
        "alipay.bill_content": {
            "omit": bill_line_rule(needs_trade=True),
            "duplicate": bill_line_rule(needs_trade=True),
            "alter_amount": bill_line_rule(needs_trade=True, amount_field="delta_minor"),
            "extra_line": bill_line_rule(needs_trade=False, amount_field="amount_minor"),
            "foreign_merchant": bill_day_rule(),
            "bad_totals": bill_day_rule(amount_field="delta_minor"),
        },
    },
    refund_settle=alipay_refund_settle,
    standing_targets=frozenset({"alipay.bill_content"}),
)
