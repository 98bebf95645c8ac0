"""The Alipay adapter: OpenAPI v2 (`alipay.trade.*`, version 1.0, sign_type RSA2).

Follows docs/gateways-alipay-unionpay.md Part A: A3/A4 request parameters and
signing, A5 response verification, A6/A14 result codes and retries, A7 the
methods, A8 notifications, A9 the browser return, A10 refund semantics,
A11 the trade bill, A12 amounts and times, A13 the merchant's checks.
Public-key-certificate mode (A15) is not supported.
"""
from __future__ import annotations

import io
import logging
import posixpath
import re
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils.translation import gettext_lazy as _

from payments.exceptions import (
    AmountMismatch,
    GatewayNotConfigured,
    GatewayRejected,
    GatewayUnavailable,
    InvalidNotification,
    NoStatement,
    NoStatementReason,
    StatementIntegrityError,
)
from payments.gateways.alipay import client
from payments.gateways.alipay.formats import (
    BEIJING,
    WIRE_DATE_FORMAT,
    fen_to_yuan,
    format_beijing,
    parse_beijing,
    yuan_to_fen,
)
from payments.gateways.alipay.signing import (
    SIGN_TYPE,
    callback_signing_text,
    load_private_key,
    load_public_key,
    verify,
)
from payments.gateways.alipay.statements import parse_trade_bill, trade_bill_columns
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
    RefundReference,
    RefundRequest,
    RefundState,
    StatementFile,
    StatementLine,
    StatementWindow,
    TradeReference,
    TradeState,
    TradeStatus,
)

logger = logging.getLogger(__name__)

# What a key loader returns (an RSA private or public key).
_Key = TypeVar("_Key")

# -- provider constants (A7) --------------------------------------------------

METHOD_PAGE_PAY = "alipay.trade.page.pay"
METHOD_WAP_PAY = "alipay.trade.wap.pay"
METHOD_PRECREATE = "alipay.trade.precreate"
METHOD_QUERY = "alipay.trade.query"
METHOD_CLOSE = "alipay.trade.close"
METHOD_REFUND = "alipay.trade.refund"
METHOD_REFUND_QUERY = "alipay.trade.fastpay.refund.query"
METHOD_BILL_URL = "alipay.data.dataservice.bill.downloadurl.query"

PRODUCT_PAGE = "FAST_INSTANT_TRADE_PAY"
# python-alipay-sdk sends QUICK_WAP_PAY; the doc advises QUICK_WAP_WAY.
PRODUCT_WAP = "QUICK_WAP_WAY"
BILL_TYPE_TRADE = "trade"

CURRENCY = "CNY"
SUBJECT_MAX_CHARS = 256
BODY_MAX_CHARS = 128
REFUND_REASON_MAX_CHARS = 256
# A12 documents letters, digits and underscores; a real notification carried
# hyphens, so they pass too.
REFERENCE = re.compile(r"[A-Za-z0-9_\-]{1,64}")
# A7: "avoid / = &" in the subject.
SUBJECT_AVOID = re.compile(r"[/=&]+")

TRADE_WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_FINISHED = "TRADE_FINISHED"
TRADE_CLOSED = "TRADE_CLOSED"
REFUND_SUCCESS = "REFUND_SUCCESS"
FUND_CHANGED = "Y"
NOTIFY_TYPE_TRADE = "trade_status_sync"

# A6 business sub_codes this adapter reads in context.
SUB_TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
SUB_TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"
SUB_SELLER_BALANCE_NOT_ENOUGH = "ACQ.SELLER_BALANCE_NOT_ENOUGH"
SUB_DISCORDANT_REPEAT_REQUEST = "ACQ.DISCORDANT_REPEAT_REQUEST"
SUB_BILL_NOT_EXIST = "isp.bill_not_exist"
# A14: a bill link that expired before the download is replaced, once.
STATEMENT_LINK_ATTEMPTS = 2
ZIP_MAGIC = b"PK\x03\x04"

ACK_BODY = b"success"  # exactly these seven bytes (A8)
NACK_BODY = b"failure"

_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030"}
_MAX_NOTIFICATION_FIELDS = 200


class AlipayGateway(Gateway):
    """Alipay page, wap and QR (precreate) payments, refunds and bills over OpenAPI v2.

    Options: `app_id`, `app_private_key_path`, `alipay_public_key_path`,
    `gateway_url` (the full `.../gateway.do`), optional `seller_id` (the
    2088... PID every notification must name) and the timeouts.
    """

    code = "alipay"
    display_name = _("Alipay")
    capabilities = Capabilities(
        methods=frozenset({PayMethod.PAGE, PayMethod.WAP, PayMethod.QR}),
        # The refund's answer carries its result (A10): no refund notifications.
        notifies_refunds=False,
    )
    required_options = ("app_id", "app_private_key_path", "alipay_public_key_path", "gateway_url")
    # A11: 00:00 to 00:00 Beijing time; a refund line is dated when the
    # money went back (完成时间).
    statement_window = StatementWindow()

    @classmethod
    def configuration_problems(cls, options: Mapping[str, Any]) -> list[str]:
        problems = super().configuration_problems(options)
        problems += cls.key_file_problems(options, {"app_private_key_path": load_private_key, "alipay_public_key_path": load_public_key})
        url = str(options.get("gateway_url") or "")
        if url and not url.startswith(("https://", "http://")):
            problems.append("gateway_url is not an http(s) URL")
        return problems

    # -- configuration --------------------------------------------------------

    @property
    def app_id(self) -> str:
        return str(self.options["app_id"])

    @property
    def seller_id(self) -> str:
        return str(self.options.get("seller_id") or "")

    @property
    def gateway_url(self) -> str:
        return str(self.options["gateway_url"])

    @cached_property
    def _private_key(self) -> rsa.RSAPrivateKey:
        return self._load_key("app_private_key_path", load_private_key)

    @cached_property
    def _public_key(self) -> rsa.RSAPublicKey:
        return self._load_key("alipay_public_key_path", load_public_key)

    def _load_key(self, option: str, loader: Callable[[bytes], _Key]) -> _Key:
        try:
            return loader(Path(self.options[option]).read_bytes())
        except (OSError, ValueError, KeyError) as exc:
            raise GatewayNotConfigured(f"alipay: {option} does not load ({type(exc).__name__})") from exc

    # -- transport ------------------------------------------------------------

    def _params(self, method: str, biz_content: Mapping[str, Any], extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return client.signed_params(
            app_id=self.app_id,
            method=method,
            biz_content=biz_content,
            private_key=self._private_key,
            now=self.clock(),
            extra=extra,
        )

    def _call(
        self,
        method: str,
        biz_content: Mapping[str, Any],
        *,
        reference: str,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return client.call(
            self.session,
            self.gateway_url,
            self._params(method, biz_content, extra),
            timeout=self.timeout,
            public_key=self._public_key,
            reference=reference,
        )

    # -- paying ---------------------------------------------------------------

    def start_payment(self, request: PaymentRequest) -> PaymentAction:
        """Sign a page/wap form for the browser, or precreate a QR trade (A7).

        PAGE and WAP return a FORM action: the cashier POSTs every signed
        parameter to the gateway from an auto-submitting form. QR calls
        `alipay.trade.precreate` and returns its `qr_code`. Raises
        ValueError for a request Alipay cannot take (amount, currency,
        reference, naive expiry), GatewayRejected (e.g. sub_code
        ACQ.TRADE_HAS_SUCCESS: query it) and GatewayUnavailable.
        """
        if request.method not in self.methods:
            raise ValueError(f"Alipay does not offer {request.method}")
        _check_reference("out_trade_no", request.out_trade_no)
        _check_currency(request.currency)
        if not request.notify_url:
            raise ValueError("Alipay payments need a notify_url")
        biz: dict[str, str] = {
            "out_trade_no": request.out_trade_no,
            "total_amount": fen_to_yuan(request.amount_minor),
            "subject": _subject(request.subject, fallback=request.out_trade_no),
        }
        if request.description:
            biz["body"] = request.description[:BODY_MAX_CHARS]
        # [unconfirmed] One Go SDK writes wap time_expire without seconds;
        # the documented format carries them.
        biz["time_expire"] = format_beijing(request.expires_at)
        extra = {"notify_url": request.notify_url}

        if request.method == PayMethod.QR:
            node = self._call(METHOD_PRECREATE, biz, reference=request.out_trade_no, extra=extra)
            _check_same(node, "out_trade_no", request.out_trade_no, METHOD_PRECREATE)
            qr_code = node.get("qr_code")
            if not isinstance(qr_code, str) or not qr_code:
                raise GatewayUnavailable(f"{METHOD_PRECREATE}: no qr_code in the answer")
            logger.info("alipay precreate for %s: QR code issued", request.out_trade_no)
            return PaymentAction(kind=ActionKind.QR, qr_content=qr_code)

        if not request.return_url:
            raise ValueError("Alipay page and wap payments need a return_url")
        extra["return_url"] = request.return_url
        if request.method == PayMethod.PAGE:
            method = METHOD_PAGE_PAY
            biz["product_code"] = PRODUCT_PAGE
        else:
            method = METHOD_WAP_PAY
            biz["product_code"] = PRODUCT_WAP
            if request.quit_url:
                biz["quit_url"] = request.quit_url
        params = self._params(method, biz, extra)
        logger.info("alipay %s for %s: form signed", method, request.out_trade_no)
        return PaymentAction(kind=ActionKind.FORM, url=client.gateway_form_url(self.gateway_url), form_fields=params)

    def query_payment(self, reference: TradeReference) -> TradeState:
        """`alipay.trade.query` by out_trade_no, mapped to a TradeState (A7, A14).

        ACQ.TRADE_NOT_EXIST is NOT_FOUND: page/wap/QR trades exist only once
        the shopper logs in or scans. TRADE_CLOSED is SUCCEEDED when the
        answer shows the trade was paid (`send_pay_date`, or a non-zero
        `buyer_pay_amount`/`receipt_amount`): Alipay closes a trade once it is
        fully refunded. Raises GatewayUnavailable (also for an answer it
        cannot read) and GatewayRejected.
        """
        out_trade_no = reference.out_trade_no
        try:
            node = self._call(METHOD_QUERY, {"out_trade_no": out_trade_no}, reference=out_trade_no)
        except GatewayRejected as exc:
            if exc.sub_code == SUB_TRADE_NOT_EXIST:
                return TradeState(out_trade_no=out_trade_no, status=TradeStatus.NOT_FOUND)
            raise
        _check_same(node, "out_trade_no", out_trade_no, METHOD_QUERY)
        trade_status = node.get("trade_status")
        if trade_status in (TRADE_SUCCESS, TRADE_FINISHED):
            status = TradeStatus.SUCCEEDED
        elif trade_status == TRADE_WAIT_BUYER_PAY:
            status = TradeStatus.PENDING
        elif trade_status == TRADE_CLOSED:
            status = TradeStatus.SUCCEEDED if _shows_payment(node) else TradeStatus.CLOSED
        else:
            raise GatewayUnavailable(f"{METHOD_QUERY}: unknown trade_status {trade_status!r}")
        paid_at = _answer_time(node, "send_pay_date", METHOD_QUERY) if status is TradeStatus.SUCCEEDED else None
        return TradeState(
            out_trade_no=out_trade_no,
            status=status,
            gateway_trade_no=str(node.get("trade_no") or ""),
            amount_minor=_answer_amount(node, "total_amount", METHOD_QUERY),
            paid_at=paid_at,
            raw=node,
        )

    def close_payment(self, reference: TradeReference) -> CloseOutcome:
        """`alipay.trade.close` (A7).

        Answers CLOSED when closed now or already; NOT_FOUND when Alipay
        never created the trade (ACQ.TRADE_NOT_EXIST: the shopper can still
        start paying until time_expire); on ACQ.TRADE_STATUS_ERROR it queries
        and answers ALREADY_PAID only for a paid trade. Raises
        GatewayUnavailable (also when the query still says WAIT_BUYER_PAY)
        and GatewayRejected.
        """
        out_trade_no = reference.out_trade_no
        try:
            self._call(METHOD_CLOSE, {"out_trade_no": out_trade_no}, reference=out_trade_no)
        except GatewayRejected as exc:
            if exc.sub_code == SUB_TRADE_NOT_EXIST:
                return CloseOutcome.NOT_FOUND
            if exc.sub_code != SUB_TRADE_STATUS_ERROR:
                raise
            state = self.query_payment(reference)
            logger.info("alipay close for %s refused; the trade is %s", out_trade_no, state.status)
            if state.status is TradeStatus.SUCCEEDED:
                return CloseOutcome.ALREADY_PAID
            if state.status is TradeStatus.CLOSED:
                return CloseOutcome.CLOSED
            if state.status is TradeStatus.NOT_FOUND:
                return CloseOutcome.NOT_FOUND
            raise GatewayUnavailable(f"{METHOD_CLOSE}: refused while the trade is {state.status}") from exc
        logger.info("alipay close for %s: closed", out_trade_no)
        return CloseOutcome.CLOSED

    def parse_return(self, params: Mapping[str, str]) -> str:
        """Verify the browser's return (A9) like a notification; the out_trade_no.

        Proves nothing about payment (there is no trade_status): query next.
        Raises InvalidNotification when unsigned, forged or not ours.
        """
        fields = {str(name): str(value) for name, value in params.items()}
        self._verify_callback(fields)
        out_trade_no = fields.get("out_trade_no", "")
        if not out_trade_no:
            raise InvalidNotification("return without out_trade_no")
        return out_trade_no

    # -- notifications --------------------------------------------------------

    def parse_notification(self, raw: RawNotification) -> PaymentNotification:
        """Verify and read a `trade_status_sync` notification (A8, A13).

        The signature covers the decoded form values, less sign and
        sign_type. Checks app_id, seller_id (when configured) and
        notify_type. TRADE_CLOSED carrying refund_fee or gmt_refund is the
        refund that emptied a paid trade: still SUCCEEDED (the refund's own
        result comes from the refund call).
        Replays are harmless (same dedupe_key), so no freshness window
        applies. Raises InvalidNotification.
        """
        fields = _decode_form(raw.body, raw.content_type or raw.header("Content-Type"))
        self._verify_callback(fields)
        if fields.get("notify_type") != NOTIFY_TYPE_TRADE:
            raise InvalidNotification(f"notify_type {fields.get('notify_type')!r} is not {NOTIFY_TYPE_TRADE}")
        for name in ("out_trade_no", "trade_no", "trade_status", "total_amount"):
            if not fields.get(name):
                raise InvalidNotification(f"notification without {name}")
        amount_minor = _notified_amount(fields, "total_amount")
        refund_fee = fields.get("refund_fee", "")
        if refund_fee:
            _notified_amount(fields, "refund_fee")  # malformed money is refused, even here
        is_refund = bool(refund_fee or fields.get("gmt_refund"))
        trade_status = fields["trade_status"]
        if trade_status in (TRADE_SUCCESS, TRADE_FINISHED):
            status = TradeStatus.SUCCEEDED
        elif trade_status == TRADE_CLOSED:
            status = TradeStatus.SUCCEEDED if is_refund else TradeStatus.CLOSED
        elif trade_status == TRADE_WAIT_BUYER_PAY:
            status = TradeStatus.PENDING
        else:
            raise InvalidNotification(f"unknown trade_status {trade_status!r}")
        paid_at = None
        if fields.get("gmt_payment"):
            try:
                paid_at = parse_beijing(fields["gmt_payment"])
            except ValueError:
                raise InvalidNotification("gmt_payment is not a time") from None
        trade_no = fields["trade_no"]
        dedupe_key = fields.get("notify_id") or f"{trade_no}:{trade_status}:{refund_fee}"
        logger.info("alipay notification for %s: %s", fields["out_trade_no"], trade_status)
        return PaymentNotification(
            out_trade_no=fields["out_trade_no"],
            status=status,
            amount_minor=amount_minor,
            gateway_trade_no=trade_no,
            dedupe_key=dedupe_key,
            paid_at=paid_at,
            raw=fields,
        )

    def _verify_callback(self, fields: Mapping[str, str]) -> None:
        """Signature (rsaCheckV1), then app_id and seller_id (A8, A9, A13)."""
        signature = fields.get("sign", "")
        if not signature:
            raise InvalidNotification("no sign")
        sign_type = fields.get("sign_type", "")
        if sign_type and sign_type != SIGN_TYPE:
            raise InvalidNotification(f"sign_type {sign_type!r} is not {SIGN_TYPE}")
        if not verify(self._public_key, callback_signing_text(fields), signature):
            raise InvalidNotification("the signature does not verify")
        if fields.get("app_id") != self.app_id:
            raise InvalidNotification(f"app_id {fields.get('app_id')!r} is not ours")
        if self.seller_id and fields.get("seller_id") != self.seller_id:
            raise InvalidNotification(f"seller_id {fields.get('seller_id')!r} is not ours")

    def acknowledge(self) -> Acknowledgement:
        return Acknowledgement(status=200, body=ACK_BODY)

    def reject(self, reason: str) -> Acknowledgement:
        # Anything but "success" makes Alipay send again; the reason is
        # logged by the caller, never told to the sender.
        return Acknowledgement(status=400, body=NACK_BODY)

    # -- refunds --------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundState:
        """`alipay.trade.refund` under `out_request_no = out_refund_no` (A7, A10).

        fund_change Y: SUCCEEDED now. fund_change N or missing (a replay, or
        not settled): the refund query decides; no refund there yet is
        PROCESSING, to be retried with the same number and amount.
        ACQ.SELLER_BALANCE_NOT_ENOUGH raises GatewayUnavailable (retry later,
        same number). ACQ.DISCORDANT_REPEAT_REQUEST returns the refund
        already made under that number, else re-raises GatewayRejected. A
        confirmed refund whose amount differs from the request raises
        AmountMismatch. Other refusals raise GatewayRejected.
        """
        _check_reference("out_trade_no", request.out_trade_no)
        _check_reference("out_refund_no", request.out_refund_no)
        _check_currency(request.currency)
        biz = {
            "out_trade_no": request.out_trade_no,
            "refund_amount": fen_to_yuan(request.amount_minor),
            "out_request_no": request.out_refund_no,
        }
        if request.reason:
            biz["refund_reason"] = request.reason[:REFUND_REASON_MAX_CHARS]
        try:
            node = self._call(METHOD_REFUND, biz, reference=request.out_refund_no)
        except GatewayRejected as exc:
            return self._refund_refused(request, exc)
        _check_same(node, "out_trade_no", request.out_trade_no, METHOD_REFUND)
        if node.get("fund_change") == FUND_CHANGED:
            logger.info("alipay refund %s: succeeded", request.out_refund_no)
            return RefundState(
                out_refund_no=request.out_refund_no,
                status=GatewayRefundStatus.SUCCEEDED,
                amount_minor=request.amount_minor,
                refunded_at=_answer_time(node, "gmt_refund_pay", METHOD_REFUND),
                raw=node,
            )
        # fund_change N: a replay of a refund already made, or one not
        # settled yet; only the refund query tells (A7, A10).
        state = self._query_refund(request.out_trade_no, request.out_refund_no)
        if state.status is GatewayRefundStatus.NOT_FOUND:
            logger.info("alipay refund %s: accepted, not settled yet", request.out_refund_no)
            return RefundState(
                out_refund_no=request.out_refund_no,
                status=GatewayRefundStatus.PROCESSING,
                message="not settled yet: query again, or repeat the refund with the same number and amount",
                raw=node,
            )
        return _same_amount(state, request)

    def _refund_refused(self, request: RefundRequest, exc: GatewayRejected) -> RefundState:
        """What a refused `alipay.trade.refund` means: retry later, the refund
        already made under this number, or a final refusal (re-raised)."""
        if exc.sub_code == SUB_SELLER_BALANCE_NOT_ENOUGH:
            raise GatewayUnavailable(
                f"{METHOD_REFUND}: {exc.sub_code} {exc.gateway_message}: "
                "retry later with the same out_refund_no"
            ) from exc
        if exc.sub_code != SUB_DISCORDANT_REPEAT_REQUEST:
            raise exc
        logger.warning("alipay refund %s: %s; querying it", request.out_refund_no, exc.sub_code)
        state = self._query_refund(request.out_trade_no, request.out_refund_no)
        if state.status is GatewayRefundStatus.NOT_FOUND:
            raise exc
        return _same_amount(state, request)

    def query_refund(self, reference: RefundReference) -> RefundState:
        """`alipay.trade.fastpay.refund.query` by out_trade_no and out_request_no (A7).

        refund_status REFUND_SUCCESS: SUCCEEDED. No refund data: NOT_FOUND
        (none received, or it failed: repeat the refund with the same number).
        [unconfirmed] Refund data without a refund_status, or another
        refund_status value, is PROCESSING: success is never assumed.
        """
        return self._query_refund(reference.payment.out_trade_no, reference.out_refund_no)

    def _query_refund(self, out_trade_no: str, out_refund_no: str) -> RefundState:
        biz = {"out_trade_no": out_trade_no, "out_request_no": out_refund_no, "query_options": ["gmt_refund_pay"]}
        try:
            node = self._call(METHOD_REFUND_QUERY, biz, reference=out_refund_no)
        except GatewayRejected as exc:
            if exc.sub_code == SUB_TRADE_NOT_EXIST:
                return RefundState(out_refund_no=out_refund_no, status=GatewayRefundStatus.NOT_FOUND)
            raise
        refund_status = str(node.get("refund_status") or "")
        if not refund_status and not node.get("refund_amount"):
            return RefundState(out_refund_no=out_refund_no, status=GatewayRefundStatus.NOT_FOUND, raw=node)
        _check_same(node, "out_request_no", out_refund_no, METHOD_REFUND_QUERY)
        _check_same(node, "out_trade_no", out_trade_no, METHOD_REFUND_QUERY)
        if refund_status != REFUND_SUCCESS:
            return RefundState(
                out_refund_no=out_refund_no,
                status=GatewayRefundStatus.PROCESSING,
                amount_minor=_answer_amount(node, "refund_amount", METHOD_REFUND_QUERY),
                message=f"refund_status {refund_status or 'missing'}",
                raw=node,
            )
        return RefundState(
            out_refund_no=out_refund_no,
            status=GatewayRefundStatus.SUCCEEDED,
            amount_minor=_answer_amount(node, "refund_amount", METHOD_REFUND_QUERY),
            refunded_at=_answer_time(node, "gmt_refund_pay", METHOD_REFUND_QUERY),
            raw=node,
        )

    # -- statements -----------------------------------------------------------

    def fetch_statement(self, day: date) -> StatementFile:
        """The `trade` bill of `day` (Beijing), downloaded at once (A7, A11, A14).

        `day` must be over in Beijing (bills are T+1). isp.bill_not_exist
        (not generated yet, or no transactions: Alipay does not say which)
        raises NoStatement(EITHER). The link lives about 30 seconds: one that
        answers with anything but a ZIP (an expired link's error page) is
        replaced by a new one, once. A ZIP that is cut short or damaged
        raises StatementIntegrityError. Raises GatewayUnavailable,
        GatewayRejected, ValueError.
        """
        if day >= self.clock().astimezone(BEIJING).date():
            raise ValueError(f"the Alipay bill for {day} is not out yet (bills are T+1, Beijing time)")
        reference = f"bill {day.isoformat()}"
        for attempt in range(1, STATEMENT_LINK_ATTEMPTS + 1):
            url = self._bill_download_url(day, reference=reference)
            try:
                content = self._download_bill(url)
            except _LinkExpired as exc:
                if attempt == STATEMENT_LINK_ATTEMPTS:
                    raise GatewayUnavailable(f"bill download: {exc} (the link may have expired)") from None
                logger.info("alipay bill for %s: %s; asking for a new link", day.isoformat(), exc)
                continue
            logger.info("alipay bill for %s downloaded (%d bytes)", day.isoformat(), len(content))
            return StatementFile(day=day, filename=_bill_filename(url, day), content=content)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _bill_download_url(self, day: date, *, reference: str) -> str:
        biz = {"bill_type": BILL_TYPE_TRADE, "bill_date": day.strftime(WIRE_DATE_FORMAT)}
        try:
            node = self._call(METHOD_BILL_URL, biz, reference=reference)
        except GatewayRejected as exc:
            if exc.sub_code == SUB_BILL_NOT_EXIST:
                raise NoStatement(f"{METHOD_BILL_URL}: {exc.sub_code}: no bill for {day.isoformat()} (yet)",
                                  reason=NoStatementReason.EITHER) from exc
            raise
        url = node.get("bill_download_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise GatewayUnavailable(f"{METHOD_BILL_URL}: no bill_download_url")
        return url

    def _download_bill(self, url: str) -> bytes:
        # A plain GET without a signature (A7).
        try:
            response = self.session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise GatewayUnavailable(f"bill download: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise _LinkExpired(f"HTTP {response.status_code}")
        content = response.content
        if not content.startswith(ZIP_MAGIC):
            # An expired link answers with an error page, not a ZIP.
            raise _LinkExpired("not a ZIP file")
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                # testzip() reports CRC errors; a broken deflate stream raises.
                broken = archive.testzip()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise StatementIntegrityError(f"bill download: the ZIP is cut short or damaged ({exc})") from exc
        if broken is not None:
            raise StatementIntegrityError(f"bill download: a damaged ZIP entry ({broken})")
        return content

    def parse_statement(self, statement: StatementFile) -> Iterator[StatementLine]:
        """The bill's lines (A11), read as a stream; StatementFormatError (a ValueError) when malformed or off its totals.

        With a `seller_id` configured, the bill's account must be ours.
        """
        with statement.open() as stream:
            yield from parse_trade_bill(stream, account=self.seller_id)

    def statement_columns(self, statement: StatementFile) -> Iterator[Any]:
        """The same lines in bulk (payments.gateways.statement_columns); plain bills only."""
        with statement.open() as stream:
            yield from trade_bill_columns(stream, account=self.seller_id)


class _LinkExpired(Exception):
    """The bill link answered with something other than the bill: ask for a new link."""


# -- helpers ------------------------------------------------------------------


def _check_reference(name: str, value: str) -> None:
    if not isinstance(value, str) or not REFERENCE.fullmatch(value):
        raise ValueError(f"{name} must be 1 to 64 letters, digits, '_' or '-': {value!r}")


def _check_currency(currency: str) -> None:
    if currency != CURRENCY:
        raise ValueError(f"Alipay trades here are in {CURRENCY}, not {currency!r}")


def _subject(subject: str, *, fallback: str) -> str:
    cleaned = " ".join(SUBJECT_AVOID.sub(" ", subject).split())
    return (cleaned or fallback)[:SUBJECT_MAX_CHARS]


def _check_same(node: Mapping[str, Any], name: str, expected: str, method: str) -> None:
    """A verified answer about another trade or refund is a fault, not a result."""
    value = node.get(name)
    if value not in (None, "") and value != expected:
        raise GatewayUnavailable(f"{method}: the answer is for {name} {value!r}, not {expected!r}")


def _answer_amount(node: Mapping[str, Any], name: str, method: str) -> int | None:
    value = node.get(name)
    if value in (None, ""):
        return None
    try:
        return yuan_to_fen(value)
    except ValueError:
        raise GatewayUnavailable(f"{method}: {name} {value!r} is not an amount") from None


def _answer_time(node: Mapping[str, Any], name: str, method: str) -> datetime | None:
    value = node.get(name)
    if value in (None, ""):
        return None
    try:
        return parse_beijing(value)
    except ValueError:
        raise GatewayUnavailable(f"{method}: {name} {value!r} is not a time") from None


def _shows_payment(node: Mapping[str, Any]) -> bool:
    """Whether a TRADE_CLOSED answer belongs to a trade that was paid (then refunded in full)."""
    if node.get("send_pay_date"):
        return True
    return any((_answer_amount(node, name, METHOD_QUERY) or 0) > 0 for name in ("buyer_pay_amount", "receipt_amount"))


def _same_amount(state: RefundState, request: RefundRequest) -> RefundState:
    if state.status is GatewayRefundStatus.SUCCEEDED and state.amount_minor not in (None, request.amount_minor):
        raise AmountMismatch(
            f"alipay refund {request.out_refund_no}: Alipay refunded {state.amount_minor} fen "
            f"under this number, the request says {request.amount_minor}"
        )
    return state


def _decode_form(body: bytes, content_type: str) -> dict[str, str]:
    """The form fields, decoded in the charset the notification declares (A8)."""
    try:
        # Latin-1 maps bytes to code points one to one: parse_qsl undoes the
        # percent-encoding without choosing a charset, and the values turn
        # back into their exact bytes.
        pairs = urllib.parse.parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            encoding="latin-1",
            max_num_fields=_MAX_NOTIFICATION_FIELDS,
        )
    except ValueError as exc:
        raise InvalidNotification(f"not a form body ({exc})") from None
    if not pairs:
        raise InvalidNotification("empty notification")
    declared = next((value for name, value in pairs if name == "charset"), "") or _header_charset(content_type)
    charset = _CHARSETS.get((declared or "utf-8").strip().lower())
    if charset is None:
        raise InvalidNotification(f"unsupported charset {declared!r}")
    fields: dict[str, str] = {}
    for name, value in pairs:
        try:
            key = name.encode("latin-1").decode(charset)
            text = value.encode("latin-1").decode(charset)
        except UnicodeDecodeError:
            raise InvalidNotification(f"a field is not {charset}") from None
        if key in fields:
            # Which of two values was signed is anyone's guess.
            raise InvalidNotification(f"field {key!r} appears twice")
        fields[key] = text
    return fields


def _header_charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        name, _sep, value = part.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"')
    return ""


def _notified_amount(fields: Mapping[str, str], name: str) -> int:
    try:
        amount = yuan_to_fen(fields[name])
    except ValueError:
        raise InvalidNotification(f"{name} {fields[name]!r} is not an amount") from None
    if amount < 0:
        raise InvalidNotification(f"{name} is negative")
    return amount


def _bill_filename(url: str, day: date) -> str:
    """The name Alipay gives the file (`downloadFileName`), else one of our own."""
    parsed = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parsed.query))
    candidate = query.get("downloadFileName") or posixpath.basename(parsed.path)
    candidate = posixpath.basename(candidate.replace("\\", "/"))
    if candidate.endswith(".zip") and re.fullmatch(r"[\w.\-]+", candidate):
        return candidate
    return f"alipay_trade_{day:%Y%m%d}.csv.zip"
