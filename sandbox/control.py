"""The provider-neutral control API under /_control/ (README.md documents it).

JSON in, JSON out; tests and demos use it to wait for readiness, reset
state, turn runtime knobs, add fault rules and read the notification log.
Provider packages add their own routes under /_control/<provider>/.
`config` shows the identities, including WeChat Pay's APIv3 and API v2
keys: published throwaway values like the sandbox keys, never secrets.
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_http_methods

from sandbox import config
from sandbox.faults import (
    FaultRuleInvalid,
    fault_add,
    fault_as_json,
    fault_clear,
    fault_delete,
    fault_targets,
)
from sandbox.keys import KEY_GENERATORS
from sandbox.models import FaultRule, Notification, Refund, Trade
from sandbox.notifications import dispatcher_wake, notification_as_json, notifications_send_now
from sandbox.runtime import RuntimeSettingInvalid, runtime_restore_defaults, runtime_settings, runtime_update
from sandbox.server import LISTENER_URLS
from sandbox.services import sandbox_reset
from sandbox.unionpay.certificates import MERCHANT_PFX_PASSWORD


class ControlInputInvalid(ValueError):
    pass


def json_answer(data: dict[str, Any], status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})


def json_error(message: str, status: int = 400) -> JsonResponse:
    return json_answer({"error": message}, status=status)


def json_body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except ValueError:
        raise ControlInputInvalid("the body is not JSON") from None
    if not isinstance(data, dict):
        raise ControlInputInvalid("the body must be a JSON object")
    return data


def _yuan(minor: int) -> str:
    return str(Decimal(minor).scaleb(-2).quantize(Decimal("0.01")))


def _when(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


def refund_as_json(refund: Refund) -> dict[str, Any]:
    return {
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "amount_minor": refund.amount_minor,
        "amount": _yuan(refund.amount_minor),
        "status": refund.status,
        "requests": refund.requests,
        "pending_queries": refund.pending_queries,
        "reason": refund.reason,
        "created_at": _when(refund.created_at),
        "succeeded_at": _when(refund.succeeded_at),
        "notify_url": refund.notify_url,
    }


def trade_as_json(trade: Trade) -> dict[str, Any]:
    refunds = list(trade.refunds.all())
    return {
        "provider": trade.provider,
        "out_trade_no": trade.out_trade_no,
        "trade_no": trade.trade_no,
        "status": trade.status,
        "pay_method": trade.pay_method,
        "amount_minor": trade.amount_minor,
        "amount": _yuan(trade.amount_minor),
        "refunded_minor": trade.refunded_minor,
        "refunded": _yuan(trade.refunded_minor),
        # Refunds that actually moved money: a replayed request adds none.
        "refund_count": sum(1 for refund in refunds if refund.status == Refund.Status.SUCCEEDED),
        "refunds": [refund_as_json(refund) for refund in refunds],
        "subject": trade.subject,
        "body": trade.body,
        "notify_url": trade.notify_url,
        "return_url": trade.return_url,
        "quit_url": trade.quit_url,
        "expires_at": _when(trade.expires_at),
        "created_at": _when(trade.created_at),
        "opened_at": _when(trade.opened_at),
        "paid_at": _when(trade.paid_at),
        "closed_at": _when(trade.closed_at),
        "notification_count": trade.notifications.count(),
    }


@require_http_methods(["GET"])
def health_view(request: HttpRequest) -> JsonResponse:
    return json_answer({"status": "ok"})


@require_http_methods(["GET"])
def config_view(request: HttpRequest) -> JsonResponse:
    return json_answer(
        {
            "keys_dir": str(settings.SANDBOX_KEYS_DIR),
            "providers": sorted(KEY_GENERATORS),
            "alipay": {
                "app_id": config.ALIPAY_APP_ID,
                "seller_id": config.ALIPAY_SELLER_ID,
                "gateway_url": request.build_absolute_uri("/alipay/gateway.do"),
            },
            "wechatpay": {
                "mchid": config.WECHATPAY_MCHID,
                "appid": config.WECHATPAY_APPID,
                "cert_serial_no": config.WECHATPAY_MERCHANT_SERIAL_NO,
                "public_key_id": config.WECHATPAY_PUBLIC_KEY_ID,
                "api_v3_key": config.WECHATPAY_API_V3_KEY,
                "api_base": request.build_absolute_uri("/wechatpay"),
            },
            # API v2: the same merchant and app, XML signed with the API key,
            # /secapi/ over the HTTPS listener with the client certificate.
            "wechatpay_v2": {
                "mchid": config.WECHATPAY_MCHID,
                "appid": config.WECHATPAY_APPID,
                "api_key": config.WECHATPAY_V2_API_KEY,
                "api_base": f"{LISTENER_URLS['https']}/wechatpay" if "https" in LISTENER_URLS else None,
                "ca_bundle": str(settings.SANDBOX_KEYS_DIR / "wechatpay" / "sandbox_ca.pem"),
                "client_cert_path": str(settings.SANDBOX_KEYS_DIR / "wechatpay" / "apiclient_cert.pem"),
                "client_key_path": str(settings.SANDBOX_KEYS_DIR / "wechatpay" / "apiclient_key.pem"),
                "client_p12_path": str(settings.SANDBOX_KEYS_DIR / "wechatpay" / "apiclient_cert.p12"),
                "client_p12_password": config.WECHATPAY_V2_P12_PASSWORD,
            },
            "unionpay": {
                "mer_id": config.UNIONPAY_MER_ID,
                "gateway_base": request.build_absolute_uri("/unionpay/gateway/api"),
                "file_transfer_url": request.build_absolute_uri("/unionpay/filetransfer/"),
                # The sandbox merchant PFX's published throwaway password.
                "sign_cert_password": MERCHANT_PFX_PASSWORD,
            },
            "settings": runtime_settings().as_json(),
            "fault_targets": {target: sorted(modes) for target, modes in fault_targets().items()},
        }
    )


@require_http_methods(["POST"])
def reset_view(request: HttpRequest) -> JsonResponse:
    try:
        body = json_body(request)
    except ControlInputInvalid as error:
        return json_error(str(error))
    sandbox_reset()
    if body.get("settings"):
        runtime_restore_defaults()
    return json_answer({"status": "ok", "settings": runtime_settings().as_json()})


@require_http_methods(["GET", "POST"])
def settings_view(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        try:
            runtime_update(json_body(request))
        except (ControlInputInvalid, RuntimeSettingInvalid) as error:
            return json_error(str(error))
        # A refund may be due sooner now (refund_settle_after_seconds,
        # time_scale, clock_offset_seconds).
        dispatcher_wake()
    return json_answer(runtime_settings().as_json())


def _faults_list() -> JsonResponse:
    return json_answer({"faults": [fault_as_json(rule) for rule in FaultRule.objects.all()]})


@require_http_methods(["GET", "POST", "DELETE"])
def faults_view(request: HttpRequest) -> JsonResponse:
    if request.method == "DELETE":
        return json_answer({"cleared": fault_clear()})
    if request.method == "GET":
        return _faults_list()
    try:
        body = json_body(request)
        params = {name: value for name, value in body.items() if name not in ("target", "mode", "out_trade_no", "count")}
        rule = fault_add(
            target=str(body.get("target", "")),
            mode=str(body.get("mode", "")),
            params=params,
            out_trade_no=body.get("out_trade_no", ""),
            count=body.get("count"),
        )
    except (ControlInputInvalid, FaultRuleInvalid) as error:
        return json_error(str(error))
    return json_answer(fault_as_json(rule), status=201)


@require_http_methods(["POST", "DELETE"])
def faults_clear_view(request: HttpRequest) -> JsonResponse:
    return json_answer({"cleared": fault_clear()})


@require_http_methods(["GET", "DELETE"])
def fault_view(request: HttpRequest, rule_id: str) -> JsonResponse:
    rule_pk = int(rule_id)
    if request.method == "DELETE":
        if not fault_delete(rule_pk):
            return json_error("no such fault rule", status=404)
        return json_answer({"deleted": rule_pk})
    rule = FaultRule.objects.filter(pk=rule_pk).first()
    if rule is None:
        return json_error("no such fault rule", status=404)
    return json_answer(fault_as_json(rule))


@require_http_methods(["GET"])
def notifications_view(request: HttpRequest) -> JsonResponse:
    notifications = Notification.objects.select_related("trade", "refund").prefetch_related("deliveries")
    for parameter, lookup in (
        ("out_trade_no", "trade__out_trade_no"),
        ("provider", "provider"),
        ("kind", "kind"),
        ("status", "status"),
    ):
        if request.GET.get(parameter):
            notifications = notifications.filter(**{lookup: request.GET[parameter]})
    return json_answer({"notifications": [notification_as_json(notification) for notification in notifications]})


@require_http_methods(["POST"])
def notifications_send_now_view(request: HttpRequest) -> JsonResponse:
    return json_answer({"scheduled_now": notifications_send_now()})
