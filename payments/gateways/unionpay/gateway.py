"""The UnionPay adapter: online gateway payment (网关支付), ACP 5.1.0, signMethod 01.

Follows docs/gateways-alipay-unionpay.md Part B: B1 endpoints, B2 keys and
certificates, B3 message format, B4 signing and verification, B5 fields,
B6 the front consume, B7 the back notification, B8 the query, B9 the
refund, B10 the refund notification, B11 the settlement file, B12 response
codes, B13 identifiers and time, B14 the merchant's checks, B15 retries.
Consume undo (31), installments and card-number fields are not used.

A transaction is known by orderId together with txnTime: the trade and
refund references carry the time every query must send again. UnionPay
cannot close a front consume; the payTimeout sent with it is the close.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from django.utils.translation import gettext_lazy as _

from payments.exceptions import (
    AmountMismatch,
    GatewayNotConfigured,
    GatewayUnavailable,
    InvalidNotification,
    NoStatement,
    NoStatementReason,
    ResponseNotVerified,
)
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
    RefundNotification,
    RefundReference,
    RefundRequest,
    RefundState,
    ReturnMethod,
    StatementFile,
    StatementLine,
    StatementWindow,
    TradeReference,
    TradeState,
    TradeStatus,
)
from payments.gateways.unionpay.client import AcpClient, raise_for_resp_code, verified_callback
from payments.gateways.unionpay.formats import (
    ACCESS_DIRECT_MERCHANT,
    BIZ_GATEWAY_B2C,
    BIZ_NONE,
    CHANNEL_DESKTOP,
    CHANNEL_MOBILE,
    CURRENCY,
    CURRENCY_CODE,
    ENCODING,
    FILE_TYPE_GENERAL,
    IN_FLIGHT,
    MER_ID,
    ORDER_ID,
    QUERY_ID,
    RESP_DUPLICATE,
    RESP_FILE_NOT_FOUND,
    RESP_NO_SUCH_TRANSACTION,
    RESP_PAID_TOO_LATE,
    SIGN_METHOD_RSA,
    SUB_CONSUME,
    SUB_FILE_TRANSFER,
    SUB_NONE,
    SUCCESSES,
    TXN_CONSUME,
    TXN_FILE_TRANSFER,
    TXN_QUERY,
    TXN_REFUND,
    VERSION,
    check_fen,
    decode_form,
    format_txn_time,
    parse_fen,
    parse_short_time,
    parse_txn_time,
    settle_date_text,
)
from payments.gateways.unionpay.signing import SigningCredential, load_signing_credential, load_trust_bundle
from payments.gateways.unionpay.statements import parse_settlement_zip, unpack_file_content

logger = logging.getLogger(__name__)

# -- provider constants (B1) --------------------------------------------------

PATH_FRONT = "frontTransReq.do"
PATH_BACK = "backTransReq.do"
PATH_QUERY = "queryTrans.do"

CHANNELS = {PayMethod.PAGE: CHANNEL_DESKTOP, PayMethod.WAP: CHANNEL_MOBILE}
# B7: any HTTP 200 acknowledges; the demos write "ok".
ACK_BODY = b"ok"
NACK_BODY = b"fail"


class UnionPayGateway(Gateway):
    """UnionPay front consume (desktop 07, mobile 08), query, refund and the settlement file.

    Options: `mer_id`; `sign_cert_path` and `sign_cert_password` (the
    merchant's PKCS#12 signing certificate; its serial is the certId, and
    `sign_cert_id`, when set, must equal it); `verify_cert_path` (a PEM
    file with UnionPay's middle and root certificates); `gateway_base` (the
    transaction host's `.../gateway/api`, to which `frontTransReq.do`,
    `backTransReq.do` and `queryTrans.do` are appended); `file_transfer_url`
    (the file-transfer host's URL, a different host at UnionPay); the
    timeouts.
    """

    code = "unionpay"
    display_name = _("UnionPay")
    capabilities = Capabilities(
        methods=frozenset({PayMethod.PAGE, PayMethod.WAP}),
        # B6: a front consume cannot be closed; payTimeout stops it.
        closes_trades=False,
        # B6: the shopper's browser comes back by POSTing to frontUrl.
        return_method=ReturnMethod.POST,
        notifies_refunds=True,
        # B9, B15: a refund is known by orderId + txnTime; a failed one stays
        # failed under them, and a retry needs a new orderId.
        refund_number_reusable_after_failure=False,
    )
    # B11: settlement day D runs from 23:00 (Beijing) the day before to 23:00
    # of D; a refund is listed on the day it completed.
    statement_window = StatementWindow(starts_at=timedelta(hours=-1))
    required_options = ("mer_id", "sign_cert_path", "verify_cert_path", "gateway_base", "file_transfer_url")

    @classmethod
    def configuration_problems(cls, options: Mapping[str, Any]) -> list[str]:
        problems = super().configuration_problems(options)
        mer_id = str(options.get("mer_id") or "")
        if mer_id and not MER_ID.fullmatch(mer_id):
            problems.append("mer_id is not a 15-character merchant id")
        password = str(options.get("sign_cert_password") or "")
        problems += cls.key_file_problems(options, {
            "sign_cert_path": lambda data: load_signing_credential(data, password),
            "verify_cert_path": load_trust_bundle,
        })
        cert_id = str(options.get("sign_cert_id") or "")
        path = options.get("sign_cert_path")
        if cert_id and path and not any("sign_cert_path" in problem for problem in problems):
            actual = load_signing_credential(Path(path).read_bytes(), password).cert_id
            if actual != cert_id:
                problems.append(f"sign_cert_id {cert_id} is not the signing certificate's serial ({actual})")
        for option in ("gateway_base", "file_transfer_url"):
            url = str(options.get(option) or "")
            if url and (urlsplit(url).scheme not in ("https", "http") or not urlsplit(url).netloc):
                problems.append(f"{option} is not an http(s) URL")
        return problems

    # -- configuration --------------------------------------------------------

    @property
    def mer_id(self) -> str:
        return str(self.options["mer_id"])

    def _url(self, path: str) -> str:
        return f"{str(self.options['gateway_base']).rstrip('/')}/{path}"

    @cached_property
    def _credential(self) -> SigningCredential:
        try:
            data = Path(self.options["sign_cert_path"]).read_bytes()
            return load_signing_credential(data, str(self.options.get("sign_cert_password") or ""))
        except (OSError, ValueError, KeyError) as exc:
            raise GatewayNotConfigured(f"unionpay: sign_cert_path does not load ({type(exc).__name__})") from exc

    @cached_property
    def _trust(self) -> list[x509.Certificate]:
        try:
            return load_trust_bundle(Path(self.options["verify_cert_path"]).read_bytes())
        except (OSError, ValueError, KeyError) as exc:
            raise GatewayNotConfigured(f"unionpay: verify_cert_path does not load ({type(exc).__name__})") from exc

    @property
    def _client(self) -> AcpClient:
        return AcpClient(session=self.session, timeout=self.timeout, credential=self._credential,
                         trust=self._trust, mer_id=self.mer_id, clock=self.clock)

    def _common(self, txn_type: str, txn_sub_type: str, biz_type: str, channel: str) -> dict[str, str]:
        return {
            "version": VERSION,
            "encoding": ENCODING,
            "signMethod": SIGN_METHOD_RSA,
            "txnType": txn_type,
            "txnSubType": txn_sub_type,
            "bizType": biz_type,
            "channelType": channel,
            "accessType": ACCESS_DIRECT_MERCHANT,
            "merId": self.mer_id,
        }

    # -- paying ---------------------------------------------------------------

    def start_payment(self, request: PaymentRequest) -> PaymentAction:
        """Sign a front consume (B6) for the auto-submitting form: the browser
        POSTs it to frontTransReq.do and UnionPay shows its cashier page.

        txnTime is the attempt's requested_at (required: every query sends it
        again); payTimeout its expires_at. No call is made, so nothing but
        ValueError (a request UnionPay cannot take) can go wrong here.
        """
        if request.method not in self.capabilities.methods:
            raise ValueError(f"UnionPay's gateway payment is paid on its page (page, wap), not {request.method}")
        _check_order_id("out_trade_no", request.out_trade_no)
        _check_currency(request.currency)
        if request.requested_at is None:
            raise ValueError("UnionPay payments need the attempt's requested_at (txnTime)")
        fields = self._common(TXN_CONSUME, SUB_CONSUME, BIZ_GATEWAY_B2C, CHANNELS[request.method])
        fields.update({
            "orderId": request.out_trade_no,
            "txnTime": format_txn_time(request.requested_at),
            "txnAmt": check_fen(request.amount_minor, "amount_minor"),
            "currencyCode": CURRENCY_CODE,
            "frontUrl": _callback_url(request.return_url, "return_url"),
            "backUrl": _callback_url(request.notify_url, "notify_url"),
            "payTimeout": format_txn_time(request.expires_at),
        })
        signed = self._client.sign(fields)
        logger.info("unionpay front consume for %s: form signed (channel %s)", request.out_trade_no,
                    fields["channelType"])
        return PaymentAction(kind=ActionKind.FORM, url=self._url(PATH_FRONT), form_fields=signed)

    def _query(self, order_id: str, txn_time: datetime, *, label: str) -> dict[str, str] | None:
        """B8: the verified answer about orderId + txnTime, None when UnionPay has no such transaction."""
        fields = self._common(TXN_QUERY, SUB_NONE, BIZ_NONE, CHANNEL_DESKTOP)
        fields.update({"orderId": order_id, "txnTime": format_txn_time(txn_time)})
        answer = self._client.call(self._url(PATH_QUERY), fields, label=label, reference=order_id)
        if answer.get("respCode") == RESP_NO_SUCH_TRANSACTION:
            return None
        raise_for_resp_code(answer, label=label, reference=order_id)
        _check_echo(answer, "orderId", order_id, label)
        _check_echo(answer, "txnTime", format_txn_time(txn_time), label)
        return answer

    def query_payment(self, reference: TradeReference) -> TradeState:
        """Query the consume by orderId + txnTime (B8), origRespCode mapped (B12).

        34 is NOT_FOUND: the shopper has not submitted it (final only after
        payTimeout). origRespCode 00 or A6 is SUCCEEDED; 03/04/05 PENDING (in
        flight); 42 (paid after payTimeout, reversed by UnionPay itself) and
        every other code FAILED. Raises GatewayUnavailable when the query
        itself is undetermined, and ResponseNotVerified for an answer that
        does not verify or is about another transaction.
        """
        label = "query"
        answer = self._query(reference.out_trade_no, reference.requested_at, label=label)
        if answer is None:
            return TradeState(out_trade_no=reference.out_trade_no, status=TradeStatus.NOT_FOUND)
        if answer.get("txnType") != TXN_CONSUME:
            raise ResponseNotVerified(f"query for {reference.out_trade_no}: txnType {answer.get('txnType')!r} "
                                      "is not a consume")
        original = answer.get("origRespCode", "")
        if original in SUCCESSES:
            status = TradeStatus.SUCCEEDED
        elif original in IN_FLIGHT:
            status = TradeStatus.PENDING
        else:
            status = TradeStatus.FAILED
            if original == RESP_PAID_TOO_LATE:
                logger.error("unionpay %s: origRespCode 42, paid after payTimeout; UnionPay reverses it itself "
                             "(B12): finance should watch for it", reference.out_trade_no)
        paid = status is TradeStatus.SUCCEEDED
        return TradeState(
            out_trade_no=reference.out_trade_no,
            status=status,
            gateway_trade_no=_answer_query_id(answer, label, required=paid),
            amount_minor=_answer_fen(answer, "txnAmt", label, required=paid),
            paid_at=_trace_time(answer, reference.requested_at) if paid else None,
            raw=answer,
        )

    def close_payment(self, reference: TradeReference) -> CloseOutcome:
        """Never called: capabilities.closes_trades is False (B6)."""
        raise ValueError("UnionPay front consumes cannot be closed; payTimeout ends them")

    def parse_return(self, params: Mapping[str, str]) -> str:
        """The front notification the browser posts to frontUrl (B6): verified, then its orderId.

        Proves nothing about payment (the shopper's browser carried it):
        the caller queries. Raises InvalidNotification when it does not
        verify, is not ours or names no orderId.
        """
        fields = {str(name): str(value) for name, value in params.items()}
        verified_callback(fields, self._trust, at=self.clock(), mer_id=self.mer_id)
        order_id = fields.get("orderId", "")
        if not ORDER_ID.fullmatch(order_id):
            raise InvalidNotification("return without a well-formed orderId")
        return order_id

    # -- notifications --------------------------------------------------------

    def _notification_fields(self, raw: RawNotification, txn_type: str) -> dict[str, str]:
        try:
            fields = decode_form(raw.body)
        except ValueError as exc:
            raise InvalidNotification(f"not a form body ({exc})") from None
        if not fields:
            raise InvalidNotification("empty notification")
        # The certificate must have been valid when the message arrived, so
        # a stored notification processed again later verifies the same way.
        verified_callback(fields, self._trust, at=raw.received_at, mer_id=self.mer_id)
        if fields.get("txnType") != txn_type:
            raise InvalidNotification(f"txnType {fields.get('txnType', '')[:4]!r} is not {txn_type}")
        if fields.get("currencyCode", CURRENCY_CODE) != CURRENCY_CODE:
            raise InvalidNotification("currencyCode is not 156 (CNY)")
        for name in ("orderId", "txnTime", "txnAmt", "queryId", "respCode"):
            if not fields.get(name):
                raise InvalidNotification(f"notification without {name}")
        if not QUERY_ID.fullmatch(fields["queryId"]) or not ORDER_ID.fullmatch(fields["orderId"]):
            raise InvalidNotification("queryId or orderId is malformed")
        return fields

    def parse_notification(self, raw: RawNotification) -> PaymentNotification:
        """Verify and read a consume back notification (B7, B14).

        Signature and signPubKeyCert first (chain, validity at reception,
        UnionPay's CN), then merId, txnType 01 and the fields. respCode 00
        or A6 is SUCCEEDED; anything else PENDING (B7: not a success; the
        query decides). The echoed txnTime is `requested_at`, which the
        services check is the attempt's. dedupe_key is queryId + respCode.
        Raises InvalidNotification.
        """
        fields = self._notification_fields(raw, TXN_CONSUME)
        requested_at, amount = _notified_time(fields), _notified_fen(fields)
        succeeded = fields["respCode"] in SUCCESSES
        logger.info("unionpay notification for %s: respCode %s", fields["orderId"], fields["respCode"])
        return PaymentNotification(
            out_trade_no=fields["orderId"],
            status=TradeStatus.SUCCEEDED if succeeded else TradeStatus.PENDING,
            amount_minor=amount,
            gateway_trade_no=fields["queryId"],
            dedupe_key=f"{TXN_CONSUME}:{fields['queryId']}:{fields['respCode']}",
            paid_at=_trace_time(fields, requested_at) if succeeded else None,
            requested_at=requested_at,
            raw=fields,
        )

    def parse_refund_notification(self, raw: RawNotification) -> RefundNotification:
        """Verify and read a refund back notification (B10, B14).

        Matched by the refund's orderId (our out_refund_no) and txnTime; the
        payment is named only by origQryId (the consume's queryId). respCode
        00 or A6 is SUCCEEDED; anything else PROCESSING (not a success; the
        refund query decides). Raises InvalidNotification.
        """
        fields = self._notification_fields(raw, TXN_REFUND)
        orig_query_id = fields.get("origQryId", "")
        if not QUERY_ID.fullmatch(orig_query_id):
            raise InvalidNotification("refund notification without a well-formed origQryId")
        succeeded = fields["respCode"] in SUCCESSES
        requested_at = _notified_time(fields)
        return RefundNotification(
            out_trade_no="",
            out_refund_no=fields["orderId"],
            status=GatewayRefundStatus.SUCCEEDED if succeeded else GatewayRefundStatus.PROCESSING,
            amount_minor=_notified_fen(fields),
            total_minor=None,
            gateway_refund_id=fields["queryId"],
            dedupe_key=f"{TXN_REFUND}:{fields['queryId']}:{fields['respCode']}",
            refunded_at=_trace_time(fields, requested_at) if succeeded else None,
            gateway_trade_no=orig_query_id,
            requested_at=requested_at,
            raw=fields,
        )

    def acknowledge(self) -> Acknowledgement:
        return Acknowledgement(status=200, body=ACK_BODY)

    def reject(self, reason: str) -> Acknowledgement:
        # B7: anything but 200 is a failed delivery and UnionPay sends again;
        # the reason is logged by the caller, never told to the sender.
        return Acknowledgement(status=400, body=NACK_BODY)

    # -- refunds --------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundState:
        """A refund (txnType 04, B9) of the consume `origQryId`, asynchronous.

        orderId is our out_refund_no, txnTime its submission time, the same
        on every retry. respCode 00 means accepted: PROCESSING, the result
        comes by notification or query. 12 (that orderId + txnTime exists
        already: a retry of a refund that arrived) is answered by querying
        it (B15). An unknown outcome raises GatewayUnavailable (send the same
        again, or query); a refusal (35, 36, 45, ...) GatewayRejected.
        """
        _check_order_id("out_refund_no", request.out_refund_no)
        _check_currency(request.currency)
        if request.requested_at is None:
            raise ValueError("UnionPay refunds need their submission time (txnTime)")
        if not QUERY_ID.fullmatch(request.gateway_trade_no):
            raise ValueError("UnionPay refunds name the consume by its queryId (gateway_trade_no)")
        amount = check_fen(request.amount_minor, "amount_minor")
        if request.amount_minor > request.total_minor:
            raise ValueError(f"refund {request.amount_minor} fen is more than the payment's {request.total_minor}")
        fields = self._common(TXN_REFUND, SUB_NONE, BIZ_GATEWAY_B2C, CHANNEL_DESKTOP)
        fields.update({
            "orderId": request.out_refund_no,
            "txnTime": format_txn_time(request.requested_at),
            "txnAmt": amount,
            "currencyCode": CURRENCY_CODE,
            "origQryId": request.gateway_trade_no,
            "backUrl": _callback_url(request.notify_url, "notify_url"),
        })
        label = "refund"
        answer = self._client.call(self._url(PATH_BACK), fields, label=label, reference=request.out_refund_no)
        if answer.get("respCode") == RESP_DUPLICATE:
            logger.warning("unionpay refund %s: 12 duplicate; querying it", request.out_refund_no)
            state = self._query_refund(request.out_refund_no, request.requested_at)
            if state.status is GatewayRefundStatus.NOT_FOUND:
                raise GatewayUnavailable(f"refund {request.out_refund_no}: duplicate, yet the query finds none")
            return _same_amount(state, request)
        raise_for_resp_code(answer, label=label, reference=request.out_refund_no)
        _check_echo(answer, "orderId", request.out_refund_no, label)
        _check_echo(answer, "origQryId", request.gateway_trade_no, label)
        logger.info("unionpay refund %s: accepted", request.out_refund_no)
        return RefundState(
            out_refund_no=request.out_refund_no,
            status=GatewayRefundStatus.PROCESSING,
            gateway_refund_id=_answer_query_id(answer, label, required=False),
            message="accepted; the result comes by notification or query",
            raw=answer,
        )

    def query_refund(self, reference: RefundReference) -> RefundState:
        """Query the refund by its own orderId + txnTime (B8, B9)."""
        return self._query_refund(reference.out_refund_no, reference.submitted_at)

    def _query_refund(self, out_refund_no: str, submitted_at: datetime) -> RefundState:
        """34 is NOT_FOUND; origRespCode 00/A6 SUCCEEDED, 03/04/05 PROCESSING,
        anything else CLOSED: failed for good under this orderId + txnTime."""
        label = "refund query"
        answer = self._query(out_refund_no, submitted_at, label=label)
        if answer is None:
            return RefundState(out_refund_no=out_refund_no, status=GatewayRefundStatus.NOT_FOUND)
        if answer.get("txnType") != TXN_REFUND:
            raise ResponseNotVerified(f"refund query for {out_refund_no}: txnType {answer.get('txnType')!r} "
                                      "is not a refund")
        original = answer.get("origRespCode", "")
        if original in SUCCESSES:
            return RefundState(
                out_refund_no=out_refund_no,
                status=GatewayRefundStatus.SUCCEEDED,
                amount_minor=_answer_fen(answer, "txnAmt", label, required=True),
                gateway_refund_id=_answer_query_id(answer, label, required=True),
                refunded_at=_trace_time(answer, submitted_at),
                raw=answer,
            )
        if original in IN_FLIGHT:
            return RefundState(out_refund_no=out_refund_no, status=GatewayRefundStatus.PROCESSING,
                               gateway_refund_id=_answer_query_id(answer, label, required=False),
                               message=f"origRespCode {original}: in flight", raw=answer)
        return RefundState(
            out_refund_no=out_refund_no,
            status=GatewayRefundStatus.CLOSED,
            amount_minor=_answer_fen(answer, "txnAmt", label, required=False),
            gateway_refund_id=_answer_query_id(answer, label, required=False),
            message=f"failed: origRespCode {original} {answer.get('origRespMsg', '')}; a retry needs a new number",
            raw=answer,
        )

    # -- statements -----------------------------------------------------------

    def fetch_statement(self, day: date) -> StatementFile:
        """The settlement file of settlement day `day` (txnType 76, fileType 00, B11).

        The day runs from 23:00 the day before to 23:00 (Beijing). respCode
        98 (no file for that day, or not yet: about 09:00 the next day)
        raises NoStatement (EITHER: UnionPay does not say which). The ZIP is
        unpacked from fileContent and checked to open. Raises
        GatewayUnavailable, GatewayRejected, StatementFormatError.
        """
        fields = self._common(TXN_FILE_TRANSFER, SUB_FILE_TRANSFER, BIZ_NONE, CHANNEL_DESKTOP)
        fields.update({"txnTime": format_txn_time(self.clock()), "settleDate": settle_date_text(day),
                       "fileType": FILE_TYPE_GENERAL})
        reference = f"settlement file {day.isoformat()}"
        label = "file transfer"
        answer = self._client.call(str(self.options["file_transfer_url"]), fields, label=label, reference=reference)
        if answer.get("respCode") == RESP_FILE_NOT_FOUND:
            raise NoStatement(f"no settlement file for {day.isoformat()} (yet): respCode {RESP_FILE_NOT_FOUND}",
                              reason=NoStatementReason.EITHER)
        raise_for_resp_code(answer, label=label, reference=reference)
        _check_echo(answer, "settleDate", settle_date_text(day), label)
        content = unpack_file_content(answer.get("fileContent", ""))
        filename = answer.get("fileName", "") or f"unionpay_{self.mer_id}_{day:%Y%m%d}.zip"
        logger.info("unionpay settlement file for %s downloaded (%d bytes)", day.isoformat(), len(content))
        return StatementFile(day=day, filename=filename, content=content)

    def parse_statement(self, statement: StatementFile) -> Iterator[StatementLine]:
        """The ZM lines with fees (B11); StatementFormatError, or StatementTotalsMismatch when off the RD totals.

        A settlement file is small next to the other bills (one merchant's
        day, fixed-width lines), so it is read whole and checked against the
        RD totals before the first line is handed out.
        """
        with statement.open() as stream:
            content = stream.read()
        yield from parse_settlement_zip(content, mer_id=self.mer_id, day=statement.day)


# -- helpers ------------------------------------------------------------------


def _check_order_id(name: str, value: str) -> None:
    if not isinstance(value, str) or not ORDER_ID.fullmatch(value):
        raise ValueError(f"{name} must be 8 to 32 letters or digits (UnionPay orderId): {value!r}")


def _check_currency(currency: str) -> None:
    if currency != CURRENCY:
        raise ValueError(f"UnionPay trades here are in {CURRENCY}, not {currency!r}")


def _callback_url(url: str, name: str) -> str:
    """B3: an absolute http(s) URL without a query string (it would join the signed set)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"{name} must be an absolute http(s) URL: {url!r}")
    if parts.query or parts.fragment or "?" in url:
        raise ValueError(f"{name} must not carry a query string: {url!r}")
    return url


def _check_echo(answer: Mapping[str, str], name: str, expected: str, label: str) -> None:
    """A verified answer about another transaction is a fault, not a result."""
    value = answer.get(name)
    if value not in (None, "") and value != expected:
        raise ResponseNotVerified(f"{label}: the answer names {name} {value[:40]!r}, not {expected!r}")


def _answer_fen(answer: Mapping[str, str], name: str, label: str, *, required: bool) -> int | None:
    value = answer.get(name, "")
    if not value and not required:
        return None
    try:
        return parse_fen(value)
    except ValueError:
        raise GatewayUnavailable(f"{label}: {name} {value[:20]!r} is not an amount") from None


def _answer_query_id(answer: Mapping[str, str], label: str, *, required: bool) -> str:
    value = answer.get("queryId", "")
    if not value and not required:
        return ""
    if not QUERY_ID.fullmatch(value):
        raise GatewayUnavailable(f"{label}: queryId is missing or malformed")
    return value


def _trace_time(fields: Mapping[str, str], near: datetime) -> datetime | None:
    """traceTime (MMDDhhmmss, B13) near the request's time; None when absent or malformed."""
    try:
        return parse_short_time(fields.get("traceTime", ""), near=near)
    except ValueError:
        return None


def _notified_time(fields: Mapping[str, str]) -> datetime:
    try:
        return parse_txn_time(fields["txnTime"])
    except ValueError:
        raise InvalidNotification("txnTime is not YYYYMMDDhhmmss") from None


def _notified_fen(fields: Mapping[str, str]) -> int:
    try:
        return parse_fen(fields["txnAmt"])
    except ValueError:
        raise InvalidNotification(f"txnAmt {fields['txnAmt'][:20]!r} is not an amount") from None


def _same_amount(state: RefundState, request: RefundRequest) -> RefundState:
    if state.amount_minor is not None and state.amount_minor != request.amount_minor:
        raise AmountMismatch(
            f"unionpay refund {request.out_refund_no}: UnionPay holds {state.amount_minor} fen under this "
            f"number, the request says {request.amount_minor}"
        )
    return state


