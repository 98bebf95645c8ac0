"""An in-memory gateway for unit tests of the services above the adapters.

Like Django's locmem email backend: it keeps its trades in the instance and
can be told to fail. End-to-end tests use the sandbox process instead.
Notifications are JSON signed with an HMAC in the `X-Fake-Signature` header.

Statements: a day's bill lists the trades paid and the refunds that
succeeded that Beijing day, unless a test sets the day's lines itself
(`bills[day]`, discrepancies included) or says there is none
(`no_bill[day]`). The file is JSON, one line per bill line and a closing
count, so the services see a real download and a streaming parse.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, replace
from datetime import date, datetime
from typing import Any

import requests
from django.utils import timezone

from payments.exceptions import InvalidNotification, NoStatement, NoStatementReason, StatementFormatError
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
    RefundBillDay,
    RefundRequest,
    RefundState,
    StatementFile,
    StatementLine,
    StatementLineKind,
    StatementWindow,
    TradeState,
    TradeStatus,
)

SECRET = b"fake-gateway-secret"


class FakeGateway(Gateway):
    code = "fake"
    display_name = "Fake Pay"
    methods = frozenset({PayMethod.PAGE, PayMethod.WAP, PayMethod.QR})
    statement_window = StatementWindow()

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
        # A day's bill lines set by a test (else built from the records),
        # and days the provider has no bill for.
        self.bills: dict[date, list[StatementLine]] = {}
        self.no_bill: dict[date, NoStatementReason] = {}
        # When each refund was asked for (a REQUESTED statement window
        # dates it so) and of which trade, by out_refund_no.
        self.refund_requested_at: dict[str, datetime] = {}
        self.refund_trade: dict[str, str] = {}

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
            self.refund_requested_at[request.out_refund_no] = timezone.now()
            self.refund_trade[request.out_refund_no] = request.out_trade_no
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

    # -- statements -----------------------------------------------------------

    def recorded_lines(self, day: date) -> list[StatementLine]:
        """What the provider would bill for `day`: its paid trades and finished refunds."""
        window = self.statement_window
        assert window is not None
        start, end = window.bounds(day)
        lines = [
            StatementLine(kind=StatementLineKind.PAYMENT, out_trade_no=trade.out_trade_no,
                          gateway_trade_no=trade.gateway_trade_no, amount_minor=trade.amount_minor or 0,
                          occurred_at=trade.paid_at)
            for trade in self.trades.values()
            if trade.status == TradeStatus.SUCCEEDED and trade.paid_at and start <= trade.paid_at < end
        ]
        for refund in self.refunds.values():
            moment = (self.refund_requested_at.get(refund.out_refund_no)
                      if window.refunds is RefundBillDay.REQUESTED else refund.refunded_at)
            if refund.status == GatewayRefundStatus.SUCCEEDED and moment and start <= moment < end:
                out_trade_no = self.refund_trade.get(refund.out_refund_no, "")
                lines.append(StatementLine(kind=StatementLineKind.REFUND, out_trade_no=out_trade_no,
                                           gateway_trade_no=f"FAKE{out_trade_no}",
                                           amount_minor=refund.amount_minor or 0,
                                           out_refund_no=refund.out_refund_no,
                                           gateway_refund_id=refund.gateway_refund_id, occurred_at=moment))
        return lines

    def fetch_statement(self, day: date) -> StatementFile:
        self._call("fetch_statement", day.isoformat())
        if day in self.no_bill:
            raise NoStatement(f"fake: no bill for {day}", reason=self.no_bill[day])
        lines = self.bills[day] if day in self.bills else self.recorded_lines(day)
        if not lines and day not in self.bills:
            raise NoStatement(f"fake: no bill for {day}", reason=NoStatementReason.NONE)
        rows = [json.dumps({**asdict(line), "raw": {}, "occurred_at": line.occurred_at.isoformat()
                            if line.occurred_at else None}) for line in lines]
        rows.append(json.dumps({"count": len(lines)}))
        return StatementFile(day=day, filename=f"fake_{day:%Y%m%d}.jsonl", content="\n".join(rows).encode())

    def parse_statement(self, statement: StatementFile) -> Iterator[StatementLine]:
        count = 0
        with statement.open() as stream:
            for number, text in enumerate(stream, start=1):
                try:
                    data = json.loads(text)
                except ValueError:
                    raise StatementFormatError(f"fake bill: line {number} is not JSON") from None
                if "count" in data:
                    if data["count"] != count:
                        raise StatementFormatError(f"fake bill: says {data['count']} lines, holds {count}")
                    return
                count += 1
                try:
                    yield StatementLine(**{**data, "kind": StatementLineKind(data["kind"]),
                                           "occurred_at": datetime.fromisoformat(data["occurred_at"])
                                           if data["occurred_at"] else None})
                except (KeyError, TypeError, ValueError) as exc:
                    raise StatementFormatError(f"fake bill: line {number}: {exc}") from None
        raise StatementFormatError("fake bill: no closing count: the file is cut short")
