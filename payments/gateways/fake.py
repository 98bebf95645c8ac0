"""An in-memory gateway for unit tests of the services above the adapters.

Like Django's locmem email backend: it keeps its trades in the instance and
can be told to fail. End-to-end tests use the sandbox process instead.
Notifications are JSON signed with an HMAC in the `X-Fake-Signature` header.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import requests
from django.utils import timezone

from payments.exceptions import InvalidNotification
from payments.gateways.base import (
    Acknowledgement,
    ActionKind,
    CloseOutcome,
    Gateway,
    GatewayRefundStatus,
    PaymentAction,
    PaymentNotification,
    PaymentRequest,
    PayMethod,
    RawNotification,
    RefundRequest,
    RefundState,
    TradeState,
    TradeStatus,
)

SECRET = b"fake-gateway-secret"


class FakeGateway(Gateway):
    code = "fake"
    display_name = "Fake Pay"
    methods = frozenset({PayMethod.PAGE, PayMethod.WAP, PayMethod.QR})
    notification_headers = frozenset({"content-type", "x-fake-signature"})

    def __init__(
        self,
        options: Mapping[str, Any],
        *,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = timezone.now,
    ) -> None:
        super().__init__(options, session=session, clock=clock)
        self.reset()

    def reset(self) -> None:
        self.requests: dict[str, PaymentRequest] = {}
        self.trades: dict[str, TradeState] = {}
        self.refunds: dict[str, RefundState] = {}
        self.calls: list[tuple[str, str]] = []
        # method name -> exception to raise on its next call
        self.fail_next: dict[str, Exception] = {}
        # What a new refund turns into; PROCESSING ones settle on query as
        # `refund_settles_as`.
        self.refund_outcome = GatewayRefundStatus.SUCCEEDED
        self.refund_settles_as = GatewayRefundStatus.SUCCEEDED
        # Refunds that really moved money, by out_refund_no.
        self.refunds_executed: dict[str, int] = {}

    def _call(self, name: str, reference: str) -> None:
        self.calls.append((name, reference))
        error = self.fail_next.pop(name, None)
        if error is not None:
            raise error

    # -- what a shopper or the provider does ---------------------------------

    def pay(self, out_trade_no: str, *, amount_minor: int | None = None, paid_at: datetime | None = None) -> None:
        request = self.requests[out_trade_no]
        self.trades[out_trade_no] = TradeState(
            out_trade_no=out_trade_no,
            status=TradeStatus.SUCCEEDED,
            gateway_trade_no=f"FAKE{out_trade_no}",
            amount_minor=request.amount_minor if amount_minor is None else amount_minor,
            paid_at=paid_at or timezone.now(),
        )

    def notification(self, out_trade_no: str, *, notification_id: str | None = None, status: str = "succeeded",
                     amount_minor: int | None = None, forged: bool = False) -> RawNotification:
        trade = self.trades.get(out_trade_no)
        body = json.dumps({
            "id": notification_id or f"N-{out_trade_no}-{status}",
            "out_trade_no": out_trade_no,
            "status": status,
            "amount_minor": amount_minor if amount_minor is not None else (
                trade.amount_minor if trade else self.requests[out_trade_no].amount_minor),
            "trade_no": f"FAKE{out_trade_no}",
        }).encode()
        signature = hmac.new(b"wrong" if forged else SECRET, body, hashlib.sha256).hexdigest()
        return RawNotification(body=body, headers={"X-Fake-Signature": signature,
                                                   "Content-Type": "application/json"},
                               received_at=timezone.now(), content_type="application/json",
                               remote_addr="127.0.0.1")

    # -- the interface ------------------------------------------------------

    def start_payment(self, request: PaymentRequest) -> PaymentAction:
        self._call("start_payment", request.out_trade_no)
        self.requests[request.out_trade_no] = request
        if request.method == PayMethod.QR:
            return PaymentAction(kind=ActionKind.QR, qr_content=f"fake://pay/{request.out_trade_no}")
        return PaymentAction(kind=ActionKind.REDIRECT, url=f"https://fake.invalid/pay/{request.out_trade_no}")

    def query_payment(self, out_trade_no: str) -> TradeState:
        self._call("query_payment", out_trade_no)
        return self.trades.get(out_trade_no, TradeState(out_trade_no=out_trade_no, status=TradeStatus.NOT_FOUND))

    def close_payment(self, out_trade_no: str) -> CloseOutcome:
        self._call("close_payment", out_trade_no)
        trade = self.trades.get(out_trade_no)
        if trade is None:
            return CloseOutcome.NOT_FOUND
        if trade.status == TradeStatus.SUCCEEDED:
            return CloseOutcome.ALREADY_PAID
        self.trades[out_trade_no] = replace(trade, status=TradeStatus.CLOSED)
        return CloseOutcome.CLOSED

    def parse_return(self, params: Mapping[str, str]) -> str:
        if params.get("sig") != hmac.new(SECRET, params.get("out_trade_no", "").encode(), "sha256").hexdigest():
            raise InvalidNotification("bad return signature")
        return params["out_trade_no"]

    def parse_notification(self, raw: RawNotification) -> PaymentNotification:
        expected = hmac.new(SECRET, raw.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, raw.header("X-Fake-Signature")):
            raise InvalidNotification("bad signature")
        try:
            data = json.loads(raw.body)
            return PaymentNotification(
                out_trade_no=data["out_trade_no"],
                status=TradeStatus(data["status"]),
                amount_minor=int(data["amount_minor"]),
                gateway_trade_no=data["trade_no"],
                dedupe_key=data["id"],
                paid_at=raw.received_at,
                raw=data,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidNotification(f"malformed: {exc}") from exc

    def acknowledge(self) -> Acknowledgement:
        return Acknowledgement(200, b"ok")

    def reject(self, reason: str) -> Acknowledgement:
        return Acknowledgement(400, b"fail")

    def refund(self, request: RefundRequest) -> RefundState:
        self._call("refund", request.out_refund_no)
        state = self.refunds.get(request.out_refund_no)
        if state is None:
            # Like the real providers: one out_refund_no moves money once.
            self.refunds_executed[request.out_refund_no] = request.amount_minor
            state = RefundState(out_refund_no=request.out_refund_no, status=self.refund_outcome,
                                amount_minor=request.amount_minor, gateway_refund_id=f"R{request.out_refund_no}",
                                refunded_at=timezone.now() if self.refund_outcome == GatewayRefundStatus.SUCCEEDED else None)
            self.refunds[request.out_refund_no] = state
        return state

    def query_refund(self, *, out_trade_no: str, out_refund_no: str) -> RefundState:
        self._call("query_refund", out_refund_no)
        state = self.refunds.get(out_refund_no)
        if state is None:
            return RefundState(out_refund_no=out_refund_no, status=GatewayRefundStatus.NOT_FOUND)
        if state.status == GatewayRefundStatus.PROCESSING:
            state = replace(state, status=self.refund_settles_as, refunded_at=timezone.now())
            self.refunds[out_refund_no] = state
        return state
