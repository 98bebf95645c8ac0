"""Fault rules: what the sandbox does wrong on purpose, and when.

A rule has a target (`<provider>.notify` for notifications, and WeChat Pay's
`wechatpay.refund_notify` for its refund notifications; `<provider>.<call>`
for calls such as `alipay.refund`), a mode with parameters, an optional
out_trade_no filter and a count: it applies to that many matching events and
is then used up. Standing targets (bill contents) apply until cleared.

Notification modes are the same for every provider and are carried out by
sandbox/notifications.py: `drop`, `delay` (seconds), `duplicate` (copies),
`reorder` (hold `count` notifications, then send them newest first) and
`forge` (variants), plus a provider's own forgery modes (WeChat Pay's
`sign_probe`). Call modes belong to the provider (see its provider.py).
Fault seconds are real seconds: the time scale does not shrink them.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F

from sandbox.models import FaultRule
from sandbox.providers import ParamsCheck, provider_codes, provider_get


class FaultRuleInvalid(ValueError):
    pass


# -- parameter checks shared by providers ------------------------------------


def _number(params: Mapping[str, Any], name: str, *, minimum: float, default: float | None = None) -> float:
    value = params.get(name, default)
    if value is None:
        raise FaultRuleInvalid(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < minimum:
        raise FaultRuleInvalid(f"{name} must be a number >= {minimum}")
    return float(value)


def _integer(params: Mapping[str, Any], name: str, *, minimum: int, default: int | None = None) -> int:
    value = params.get(name, default)
    if value is None:
        raise FaultRuleInvalid(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FaultRuleInvalid(f"{name} must be an integer >= {minimum}")
    return value


def no_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def seconds_param(params: Mapping[str, Any]) -> dict[str, Any]:
    return {"seconds": _number(params, "seconds", minimum=0)}


def optional_seconds_param(params: Mapping[str, Any]) -> dict[str, Any]:
    return {"seconds": _number(params, "seconds", minimum=0)} if "seconds" in params else {}


def copies_param(params: Mapping[str, Any]) -> dict[str, Any]:
    return {"copies": _integer(params, "copies", minimum=2, default=2)}


def queries_param(params: Mapping[str, Any]) -> dict[str, Any]:
    return {"queries": _integer(params, "queries", minimum=0, default=1)}


def error_param(default_code: str, default_sub_code: str) -> ParamsCheck:
    """An error answer: `code`, `sub_code`, optional `msg` and `sub_msg`."""

    def check(params: Mapping[str, Any]) -> dict[str, Any]:
        checked = {
            "code": str(params.get("code", default_code)),
            "sub_code": str(params.get("sub_code", default_sub_code)),
        }
        for optional in ("msg", "sub_msg"):
            if optional in params:
                checked[optional] = str(params[optional])
        return checked

    return check


def bill_line_rule(*, needs_trade: bool, amount_field: str = "") -> ParamsCheck:
    """A bill-content rule: `out_trade_no` (the trade whose line changes) and
    `kind` (payment/refund), or for an extra line a `bill_date`; plus a
    non-zero integer `amount_field` in fen when the mode needs one."""

    def check(params: Mapping[str, Any]) -> dict[str, Any]:
        checked: dict[str, Any] = {}
        if needs_trade and not params.get("out_trade_no"):
            raise FaultRuleInvalid("out_trade_no is required: it names the trade whose line changes")
        kind = params.get("kind", "payment")
        if kind not in ("payment", "refund"):
            raise FaultRuleInvalid("kind must be payment or refund")
        checked["kind"] = kind
        if "bill_date" in params:
            try:
                datetime.strptime(str(params["bill_date"]), "%Y-%m-%d")
            except ValueError:
                raise FaultRuleInvalid("bill_date must be yyyy-MM-dd") from None
            checked["bill_date"] = str(params["bill_date"])
        elif not needs_trade:
            raise FaultRuleInvalid("bill_date is required for an extra line")
        if amount_field:
            value = params.get(amount_field)
            if isinstance(value, bool) or not isinstance(value, int) or value == 0:
                raise FaultRuleInvalid(f"{amount_field} must be a non-zero integer (fen)")
            checked[amount_field] = value
        return checked

    return check


def bill_day_rule(*, amount_field: str = "") -> ParamsCheck:
    """A rule on a whole day's bill: `bill_date` (yyyy-MM-dd, required) and a
    non-zero integer `amount_field` in fen when the mode needs one."""
    base = bill_line_rule(needs_trade=False, amount_field=amount_field)

    def check(params: Mapping[str, Any]) -> dict[str, Any]:
        checked = base(params)
        checked.pop("kind", None)
        return checked

    return check


def currency_rule(params: Mapping[str, Any]) -> dict[str, Any]:
    """`alter_currency`: the trade (`out_trade_no`, `kind`) and the three-letter `currency` to write."""
    checked = bill_line_rule(needs_trade=True)(params)
    currency = params.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise FaultRuleInvalid("currency must be three upper-case letters, e.g. USD")
    checked["currency"] = currency
    return checked


def _forge_param(provider: str) -> ParamsCheck:
    def check(params: Mapping[str, Any]) -> dict[str, Any]:
        notification_format = provider_get(provider).notification_format
        variants = params.get("variants", list(notification_format.default_forgeries))
        if not isinstance(variants, list) or not variants:
            raise FaultRuleInvalid("variants must be a non-empty list")
        unknown = sorted(set(variants) - notification_format.forgery_variants)
        if unknown:
            raise FaultRuleInvalid(
                f"unknown forgery variants {unknown}; known: {sorted(notification_format.forgery_variants)}"
            )
        return {"variants": variants}

    return check


def _notify_modes(provider: str) -> dict[str, ParamsCheck]:
    modes: dict[str, ParamsCheck] = {
        "drop": no_params,
        "delay": seconds_param,
        "duplicate": copies_param,
        "reorder": no_params,
        "forge": _forge_param(provider),
    }
    modes.update({mode: no_params for mode in provider_get(provider).forgery_modes})
    return modes


def fault_targets() -> dict[str, dict[str, ParamsCheck]]:
    """Every target the sandbox knows, with its modes."""
    targets: dict[str, dict[str, ParamsCheck]] = {}
    for code in provider_codes():
        provider = provider_get(code)
        for target in provider.notify_fault_targets():
            targets[target] = _notify_modes(code)
        targets.update({target: dict(modes) for target, modes in provider.call_faults.items()})
    return targets


def _standing(target: str) -> bool:
    provider = target.split(".", 1)[0]
    return provider in provider_codes() and target in provider_get(provider).standing_targets


# -- services -----------------------------------------------------------------


def fault_add(
    *, target: str, mode: str, params: Mapping[str, Any], out_trade_no: str = "", count: int | None = None
) -> FaultRule:
    """Add a rule after checking its target, mode and parameters; raises FaultRuleInvalid."""
    targets = fault_targets()
    if target not in targets:
        raise FaultRuleInvalid(f"unknown target {target!r}; known: {sorted(targets)}")
    if mode not in targets[target]:
        raise FaultRuleInvalid(f"unknown mode {mode!r} for {target}; known: {sorted(targets[target])}")
    if not isinstance(out_trade_no, str) or len(out_trade_no) > 64:
        raise FaultRuleInvalid("out_trade_no must be a string of at most 64 characters")
    # Reordering needs at least two notifications to have an order.
    minimum_count = 2 if mode == "reorder" else 1
    count = _integer({} if count is None else {"count": count}, "count", minimum=minimum_count, default=minimum_count)
    return FaultRule.objects.create(
        target=target,
        mode=mode,
        # Checks see the filter too: some modes need a trade to aim at.
        params=targets[target][mode]({**params, "out_trade_no": out_trade_no}),
        out_trade_no=out_trade_no,
        remaining=count,
    )


def fault_take(target: str, *, out_trade_no: str) -> FaultRule | None:
    """Use up one application of the oldest rule matching this event, if any.

    Rules whose filter names another trade are skipped. The returned rule
    shows `remaining` after this use.
    """
    with transaction.atomic():
        candidates = FaultRule.objects.select_for_update().filter(target=target, remaining__gt=0)
        for rule in candidates.order_by("id"):
            if rule.out_trade_no and rule.out_trade_no != out_trade_no:
                continue
            FaultRule.objects.filter(pk=rule.pk).update(remaining=F("remaining") - 1, applied=F("applied") + 1)
            # The transaction is IMMEDIATE (settings.py): it has held the
            # write lock since BEGIN, so the row read above is still current.
            rule.remaining -= 1
            rule.applied += 1
            return rule
    return None


def fault_standing_rules(target: str) -> list[FaultRule]:
    """Rules of a standing target: they apply every time until cleared."""
    if not _standing(target):
        raise FaultRuleInvalid(f"{target} is not a standing target")
    return list(FaultRule.objects.filter(target=target))


def fault_delete(rule_id: int) -> bool:
    # Imported here: sandbox.notifications imports this module.
    from sandbox.notifications import notifications_release_held

    with transaction.atomic():
        rule = FaultRule.objects.filter(pk=rule_id).first()
        if rule is None:
            return False
        notifications_release_held(rule)
        rule.delete()
        return True


def fault_clear() -> int:
    """Remove every rule; notifications a reorder rule was holding are released."""
    # Imported here: sandbox.notifications imports this module.
    from sandbox.notifications import notifications_release_held

    with transaction.atomic():
        rules = list(FaultRule.objects.all())
        for rule in rules:
            notifications_release_held(rule)
        FaultRule.objects.all().delete()
        return len(rules)


def fault_as_json(rule: FaultRule) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "target": rule.target,
        "mode": rule.mode,
        "params": rule.params,
        "out_trade_no": rule.out_trade_no,
        "remaining": rule.remaining,
        "applied": rule.applied,
        "standing": _standing(rule.target),
    }
