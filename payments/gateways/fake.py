"""An in-memory gateway for unit tests of the services above the adapters.

Like Django's locmem email backend: it keeps its trades in the instance and
can be told to fail. End-to-end tests use the sandbox process instead.
It implements the whole interface: payments, browser returns, payment and
refund notifications, refunds and statements. Notifications are JSON signed
with an HMAC in the `X-Fake-Signature` header; returns carry an HMAC `sig`.

Like a provider that names trades by number and time (UnionPay), it knows a
trade by its out_trade_no together with the request time it was started
with, and a refund by its number and submission time: a query with another
time finds nothing. Tests narrow or widen `capabilities` on the instance to
play providers that cannot close trades, return by POST, and so on.

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
    Capabilities,
    CloseOutcome,
    Gateway,
    GatewayRefundStatus,
    PaymentAction,
    PaymentNotification,
    PaymentRequest,
    PayMethod,
    RawNotification,
    RefundBillDay,
    RefundNotification,
    RefundReference,
    RefundRequest,
    RefundState,
    StatementFile,
    StatementLine,
    StatementLineKind,
    StatementWindow,
    TradeReference,
    TradeState,
    TradeStatus,
)

SECRET = b"fake-gateway-secret"
# What fetch_statement raises for a day without a bill (sub_code).
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def _sign(body: bytes, *, forged: bool = False) -> str:
    return hmac.new(b"wrong" if forged else SECRET, body, hashlib.sha256).hexdigest()


def _time_text(moment: datetime | None) -> str:
    return moment.strftime(_TIME_FORMAT) if moment is not None else ""


def _time_value(text: Any) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(str(text), _TIME_FORMAT)


class FakeGateway(Gateway):
    code = "fake"
    display_name = "Fake Pay"
    capabilities = Capabilities(
        methods=frozenset({PayMethod.PAGE, PayMethod.WAP, PayMethod.QR}),
        notifies_refunds=True,
    )
    notification_headers = frozenset({"content-type", "x-fake-signature"})
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
        self.capabilities = type(self).capabilities
        self.requests: dict[str, PaymentRequest] = {}
        self.trades: dict[str, TradeState] = {}
        self.refunds: dict[str, RefundState] = {}
        # The submission time each refund number was first sent with, and
        # the payment it refunds.
        self.refund_times: dict[str, datetime | None] = {}
        self.refund_payments: dict[str, str] = {}
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
        # When each refund was asked for, as a REQUESTED statement window
        # dates it (tests move it without touching the refund's identity).
        self.refund_requested_at: dict[str, datetime] = {}

    def with_capabilities(self, **changes: Any) -> FakeGateway:
        """Play a provider that differs, e.g. `closes_trades=False`."""
        self.capabilities = replace(self.capabilities, **changes)
        return self

    def _call(self, name: str, reference: str) -> None:
        self.calls.append((name, reference))
        error = self.fail_next.pop(name, None)
        if error is not None:
            raise error

    def _known(self, reference: TradeReference) -> bool:
        """Is this the trade we were asked for: same number, same request time?"""
        request = self.requests.get(reference.out_trade_no)
        if request is None:
            return False
        return request.requested_at is None or request.requested_at == reference.requested_at

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
                     amount_minor: int | None = None, forged: bool = False,
                     requested_at: datetime | None = None) -> RawNotification:
        trade = self.trades.get(out_trade_no)
        request = self.requests.get(out_trade_no)
        body = json.dumps({
            "id": notification_id or f"N-{out_trade_no}-{status}",
            "out_trade_no": out_trade_no,
            "status": status,
            "amount_minor": amount_minor if amount_minor is not None else (
                trade.amount_minor if trade else self.requests[out_trade_no].amount_minor),
            "trade_no": f"FAKE{out_trade_no}",
            "requested_at": _time_text(requested_at or (request.requested_at if request else None)),
        }).encode()
        return self._raw(body, forged=forged)

    def refund_notification(self, out_refund_no: str, *, status: str = "succeeded", amount_minor: int | None = None,
                            out_trade_no: str | None = None, gateway_trade_no: str = "", forged: bool = False,
                            notification_id: str | None = None) -> RawNotification:
        """What the provider posts when a refund ends (settles it here too).

        It names the payment by our out_trade_no unless told otherwise, or
        only by the provider's trade number (`out_trade_no=""`,
        `gateway_trade_no=...`), as UnionPay does.
        """
        state = self.refunds[out_refund_no]
        ended = replace(state, status=GatewayRefundStatus(status),
                        refunded_at=timezone.now() if status == "succeeded" else None)
        self.refunds[out_refund_no] = ended
        body = json.dumps({
            "id": notification_id or f"RN-{out_refund_no}-{status}",
            "out_trade_no": self.refund_payments[out_refund_no] if out_trade_no is None else out_trade_no,
            "out_refund_no": out_refund_no,
            "status": status,
            "amount_minor": state.amount_minor if amount_minor is None else amount_minor,
            "refund_id": state.gateway_refund_id,
            "trade_no": gateway_trade_no,
            "requested_at": _time_text(self.refund_times.get(out_refund_no)),
        }).encode()
        return self._raw(body, forged=forged)

    def _raw(self, body: bytes, *, forged: bool) -> RawNotification:
        return RawNotification(body=body, headers={"X-Fake-Signature": _sign(body, forged=forged),
                                                   "Content-Type": "application/json"},
                               received_at=timezone.now(), content_type="application/json",
                               remote_addr="127.0.0.1")

    def return_params(self, out_trade_no: str, *, forged: bool = False) -> dict[str, str]:
        """The parameters the browser comes back with (query string or posted form)."""
        return {"out_trade_no": out_trade_no, "sig": _sign(out_trade_no.encode(), forged=forged)}

    # -- the interface ------------------------------------------------------

    def start_payment(self, request: PaymentRequest) -> PaymentAction:
        self._call("start_payment", request.out_trade_no)
        self.requests[request.out_trade_no] = request
        if request.method == PayMethod.QR:
            return PaymentAction(kind=ActionKind.QR, qr_content=f"fake://pay/{request.out_trade_no}")
        return PaymentAction(kind=ActionKind.REDIRECT, url=f"https://fake.invalid/pay/{request.out_trade_no}")

    def query_payment(self, reference: TradeReference) -> TradeState:
        self._call("query_payment", reference.out_trade_no)
        not_found = TradeState(out_trade_no=reference.out_trade_no, status=TradeStatus.NOT_FOUND)
        if not self._known(reference):
            return not_found
        return self.trades.get(reference.out_trade_no, not_found)

    def close_payment(self, reference: TradeReference) -> CloseOutcome:
        out_trade_no = reference.out_trade_no
        self._call("close_payment", out_trade_no)
        if not self.capabilities.closes_trades:
            raise AssertionError("close_payment called on a gateway that cannot close trades")
        trade = self.trades.get(out_trade_no)
        if trade is None:
            return CloseOutcome.NOT_FOUND
        if trade.status == TradeStatus.SUCCEEDED:
            return CloseOutcome.ALREADY_PAID
        self.trades[out_trade_no] = replace(trade, status=TradeStatus.CLOSED)
        return CloseOutcome.CLOSED

    def parse_return(self, params: Mapping[str, str]) -> str:
        out_trade_no = params.get("out_trade_no", "")
        if not hmac.compare_digest(params.get("sig", ""), _sign(out_trade_no.encode())):
            raise InvalidNotification("bad return signature")
        return out_trade_no

    def _verified_json(self, raw: RawNotification) -> dict[str, Any]:
        if not hmac.compare_digest(_sign(raw.body), raw.header("X-Fake-Signature")):
            raise InvalidNotification("bad signature")
        try:
            data = json.loads(raw.body)
        except ValueError as exc:
            raise InvalidNotification(f"malformed: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidNotification("malformed: not an object")
        return data

    def parse_notification(self, raw: RawNotification) -> PaymentNotification:
        data = self._verified_json(raw)
        try:
            return PaymentNotification(
                out_trade_no=data["out_trade_no"],
                status=TradeStatus(data["status"]),
                amount_minor=int(data["amount_minor"]),
                gateway_trade_no=data["trade_no"],
                dedupe_key=data["id"],
                paid_at=raw.received_at,
                requested_at=_time_value(data.get("requested_at")),
                raw=data,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidNotification(f"malformed: {exc}") from exc

    def parse_refund_notification(self, raw: RawNotification) -> RefundNotification:
        data = self._verified_json(raw)
        try:
            return RefundNotification(
                out_trade_no=data["out_trade_no"],
                out_refund_no=data["out_refund_no"],
                status=GatewayRefundStatus(data["status"]),
                amount_minor=int(data["amount_minor"]),
                total_minor=None,
                gateway_refund_id=data["refund_id"],
                dedupe_key=data["id"],
                refunded_at=raw.received_at if data["status"] == "succeeded" else None,
                gateway_trade_no=data.get("trade_no", ""),
                requested_at=_time_value(data.get("requested_at")),
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
            self.refund_times[request.out_refund_no] = request.requested_at
            self.refund_requested_at[request.out_refund_no] = request.requested_at or timezone.now()
            self.refund_payments[request.out_refund_no] = request.out_trade_no
            state = RefundState(out_refund_no=request.out_refund_no, status=self.refund_outcome,
                                amount_minor=request.amount_minor, gateway_refund_id=f"R{request.out_refund_no}",
                                refunded_at=timezone.now() if self.refund_outcome == GatewayRefundStatus.SUCCEEDED else None)
            self.refunds[request.out_refund_no] = state
        return state

    def query_refund(self, reference: RefundReference) -> RefundState:
        out_refund_no = reference.out_refund_no
        self._call("query_refund", out_refund_no)
        state = self.refunds.get(out_refund_no)
        sent_at = self.refund_times.get(out_refund_no)
        if state is None or (sent_at is not None and sent_at != reference.submitted_at):
            return RefundState(out_refund_no=out_refund_no, status=GatewayRefundStatus.NOT_FOUND)
        if state.status == GatewayRefundStatus.PROCESSING:
            state = replace(state, status=self.refund_settles_as,
                            refunded_at=timezone.now() if self.refund_settles_as == GatewayRefundStatus.SUCCEEDED
                            else None)
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
                out_trade_no = self.refund_payments.get(refund.out_refund_no, "")
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
