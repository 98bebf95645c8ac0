"""The WeChat Pay adapter: API v3, direct merchant (直连商户), public-key mode.

Follows docs/gateways-wechatpay.md: §3 request signatures, §4 answer
verification, §5 notifications (AEAD_AES_256_GCM resources), §6 the
endpoints (Native and H5 prepay, query, close, refund, refund query, trade
bill and its download), §7 identifiers and amounts, §8 error codes, §9 the
merchant's checks, §11 retries. Platform-certificate mode (§2, §4.3 steps
2-3), JSAPI/APP payments, service-provider endpoints and API v2 (§10) are
not supported.
"""
from __future__ import annotations

import io
import ipaddress
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from payments.exceptions import (
    AmountMismatch,
    GatewayNotConfigured,
    GatewayRejected,
    GatewayUnavailable,
    InvalidNotification,
    NoStatement,
    NoStatementReason,
    ResponseNotVerified,
    StatementIntegrityError,
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
    RefundBillDay,
    RefundNotification,
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
from payments.gateways.wechatpay.client import ApiClient, DownloadRefused, path_segment
from payments.gateways.wechatpay.formats import (
    OUT_REFUND_NO,
    OUT_TRADE_NO,
    PROVIDER_ID,
    check_fen,
    format_rfc3339,
    parse_rfc3339,
)
from payments.gateways.wechatpay.notifications import Recipient, payment_notification, refund_notification
from payments.gateways.wechatpay.signing import (
    check_api_v3_key,
    load_private_key,
    load_public_key,
    new_nonce,
)
from payments.gateways.wechatpay.statements import (
    GZIP_MAGIC,
    check_bill,
    parse_trade_bill,
    trade_bill_columns,
)

logger = logging.getLogger(__name__)

# What an option loader returns (a key, or the APIv3 key's bytes).
_Loaded = TypeVar("_Loaded")

# -- provider constants (§6) --------------------------------------------------

PATH_NATIVE = "/v3/pay/transactions/native"
PATH_H5 = "/v3/pay/transactions/h5"
PATH_BY_OUT_TRADE_NO = "/v3/pay/transactions/out-trade-no/{out_trade_no}"
PATH_CLOSE = "/v3/pay/transactions/out-trade-no/{out_trade_no}/close"
PATH_REFUNDS = "/v3/refund/domestic/refunds"
PATH_REFUND = "/v3/refund/domestic/refunds/{out_refund_no}"
PATH_TRADEBILL = "/v3/bill/tradebill"

CURRENCY = "CNY"
DESCRIPTION_MAX_CHARS = 127  # §6.1 string(127)
REFUND_REASON_MAX_CHARS = 80  # §6.5 string(80)
NOTIFY_URL_MAX_CHARS = 255  # §6.1 string(255); refunds allow 256
H5_SCENE_TYPE = "Wap"  # §6.2: iOS, Android or Wap; a mobile browser is Wap
FALLBACK_CLIENT_IP = "127.0.0.1"
# Real H5 pages send the browser to `redirect_url` (appended to h5_url,
# URL-encoded) once the payment ends; it carries no result and no signature.
H5_REDIRECT_PARAMETER = "redirect_url"
BILL_TYPE = "ALL"  # §6.8: successful payments plus refunds started that day
BILL_TAR_TYPE = "GZIP"

# §5.3 trade_state
TRADE_STATES = {
    "SUCCESS": TradeStatus.SUCCEEDED,
    "REFUND": TradeStatus.SUCCEEDED,  # paid, then refunded in part or in full
    "NOTPAY": TradeStatus.PENDING,
    "USERPAYING": TradeStatus.PENDING,
    "CLOSED": TradeStatus.CLOSED,
    "REVOKED": TradeStatus.CLOSED,
    "PAYERROR": TradeStatus.FAILED,
}
# §6.6 refund `status`; `CLOSE` is the OpenAPI enum's spelling (§12.3).
REFUND_STATUSES = {
    "PROCESSING": GatewayRefundStatus.PROCESSING,
    "SUCCESS": GatewayRefundStatus.SUCCEEDED,
    "CLOSED": GatewayRefundStatus.CLOSED,
    "CLOSE": GatewayRefundStatus.CLOSED,
    "ABNORMAL": GatewayRefundStatus.ABNORMAL,
}

# §8 codes read in context (v2 spellings accepted where the doc names them).
CODES_ORDER_NOT_EXIST = frozenset({"ORDER_NOT_EXIST", "ORDERNOTEXIST"})
CODES_ORDER_CLOSED = frozenset({"ORDER_CLOSED", "ORDERCLOSED"})
CODES_ORDER_PAID = frozenset({"ORDERPAID", "ORDER_PAID"})
CODE_RESOURCE_NOT_EXISTS = "RESOURCE_NOT_EXISTS"
CODES_NOT_ENOUGH = frozenset({"NOT_ENOUGH", "NOTENOUGH"})
CODE_STATEMENT_CREATING = "STATEMENT_CREATING"
CODE_NO_STATEMENT_EXIST = "NO_STATEMENT_EXIST"
# A refused download link is replaced once by a new tradebill call (§6.8, §12.4).
STATEMENT_LINK_ATTEMPTS = 2

# §5.5: the status decides; the body is what the official samples send.
ACK_BODY = '{"code":"SUCCESS","message":"成功"}'.encode()
NACK_BODY = '{"code":"FAIL","message":"失败"}'.encode()
JSON_CONTENT_TYPE = "application/json"

SERIAL_NO = re.compile(r"[0-9A-Fa-f]{40}")
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"


class WechatPayGateway(Gateway):
    """WeChat Pay Native (QR) and H5 payments, refunds and trade bills over API v3.

    Options: `mchid`, `appid`, `api_v3_key` (32 bytes), `private_key_path`
    (the merchant API key) and `cert_serial_no` (its certificate's
    serial), `public_key_path` and `public_key_id` (the WeChat Pay public
    key, `PUB_KEY_ID_...`), `api_base` (`https://api.mch.weixin.qq.com`,
    or a base with its own path prefix such as the sandbox's
    `http://127.0.0.1:8001/wechatpay`) and the timeouts. `nonce` makes
    request nonces for tests; it defaults to 32 random upper-case hex.
    """

    code = "wechatpay"
    display_name = _("WeChat Pay")
    capabilities = Capabilities(
        methods=frozenset({PayMethod.QR, PayMethod.WAP}),
        # The provider refuses to close a trade within five minutes of creating it.
        close_delay=timedelta(minutes=5),
        notifies_refunds=True,
        # A refund that failed ends CLOSED, and a CLOSED number is finished for
        # good (§6.6); one refused at creation was never made and may be sent again.
        refund_number_reusable_after_failure=True,
    )
    # docs/gateways-wechatpay.md §4.1: what a notification's check reads.
    notification_headers = frozenset({
        "content-type", "wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature", "wechatpay-serial",
        "wechatpay-signature-type", "request-id",
    })
    # §6.9: a Beijing calendar day; 交易时间 of a refund row is when it was
    # applied for, not when it succeeded.
    statement_window = StatementWindow(refunds=RefundBillDay.REQUESTED)
    required_options = (
        "mchid",
        "appid",
        "api_v3_key",
        "private_key_path",
        "cert_serial_no",
        "public_key_path",
        "public_key_id",
        "api_base",
    )

    def __init__(
        self,
        options: Mapping[str, Any],
        *,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = timezone.now,
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        super().__init__(options, session=session, clock=clock)
        self.nonce = nonce

    @classmethod
    def configuration_problems(cls, options: Mapping[str, Any]) -> list[str]:
        problems = super().configuration_problems(options)
        problems += cls.key_file_problems(options, {"private_key_path": load_private_key, "public_key_path": load_public_key})
        if options.get("api_v3_key"):
            try:
                check_api_v3_key(options["api_v3_key"])
            except ValueError as exc:
                problems.append(f"api_v3_key: {exc}")
        serial = options.get("cert_serial_no")
        if serial and not SERIAL_NO.fullmatch(str(serial)):
            problems.append("cert_serial_no is not the 40 hex characters of a certificate serial")
        key_id = options.get("public_key_id")
        if key_id and not str(key_id).startswith(PUBLIC_KEY_ID_PREFIX):
            problems.append(f"public_key_id does not start with {PUBLIC_KEY_ID_PREFIX}")
        base = options.get("api_base")
        if base:
            parts = urlsplit(str(base))
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
                problems.append("api_base is not an http(s) URL without query or fragment")
        return problems

    # -- configuration --------------------------------------------------------

    @property
    def mchid(self) -> str:
        return str(self.options["mchid"])

    @property
    def appid(self) -> str:
        return str(self.options["appid"])

    @property
    def public_key_id(self) -> str:
        return str(self.options["public_key_id"])

    @cached_property
    def _private_key(self) -> rsa.RSAPrivateKey:
        return self._load("private_key_path", lambda path: load_private_key(Path(path).read_bytes()))

    @cached_property
    def _public_key(self) -> rsa.RSAPublicKey:
        return self._load("public_key_path", lambda path: load_public_key(Path(path).read_bytes()))

    @cached_property
    def _api_v3_key(self) -> bytes:
        return self._load("api_v3_key", check_api_v3_key)

    def _load(self, option: str, loader: Callable[[Any], _Loaded]) -> _Loaded:
        try:
            return loader(self.options[option])
        except (OSError, ValueError, KeyError) as exc:
            raise GatewayNotConfigured(f"wechatpay: {option} does not load ({type(exc).__name__})") from exc

    @property
    def _client(self) -> ApiClient:
        return ApiClient(
            session=self.session,
            timeout=self.timeout,
            api_base=str(self.options["api_base"]),
            mchid=self.mchid,
            serial_no=str(self.options["cert_serial_no"]).upper(),
            private_key=self._private_key,
            public_key=self._public_key,
            public_key_id=self.public_key_id,
            clock=self.clock,
            nonce=self.nonce,
        )

    @property
    def _recipient(self) -> Recipient:
        return Recipient(
            mchid=self.mchid,
            appid=self.appid,
            public_key=self._public_key,
            public_key_id=self.public_key_id,
            api_v3_key=self._api_v3_key,
        )

    # -- paying ---------------------------------------------------------------

    def start_payment(self, request: PaymentRequest) -> PaymentAction:
        """Native prepay (QR: the `code_url`) or H5 prepay (WAP: go to `h5_url`) (§6.1, §6.2).

        The WAP action's URL carries `redirect_url` = return_url plus
        `?out_trade_no=...`, where WeChat sends the browser when it is done.
        Retrying the same out_trade_no with identical parameters is allowed
        before time_expire (§6.1). Raises ValueError for a request WeChat
        Pay cannot take (PAGE, amount, currency, reference, notify_url,
        naive expiry), GatewayRejected (e.g. sub_code OUT_TRADE_NO_USED) and
        GatewayUnavailable.
        """
        if request.method not in self.methods:
            raise ValueError(f"WeChat Pay offers Native (qr) and H5 (wap) payments, not {request.method}")
        _check_out_trade_no(request.out_trade_no)
        total = check_fen(request.amount_minor, "amount_minor")
        _check_currency(request.currency)
        payload: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mchid,
            "description": _description(request.subject, fallback=request.out_trade_no),
            "out_trade_no": request.out_trade_no,
            "time_expire": format_rfc3339(request.expires_at),
            "notify_url": _check_notify_url(request.notify_url, required=True),
            "amount": {"total": total, "currency": CURRENCY},
        }
        if request.method == PayMethod.QR:
            answer = self._client.call("POST", PATH_NATIVE, payload=payload, reference=request.out_trade_no)
            code_url = answer.data.get("code_url")
            if not isinstance(code_url, str) or not code_url:
                raise GatewayUnavailable(f"POST {PATH_NATIVE}: no code_url in the answer")
            logger.info("wechatpay native prepay for %s: QR code issued", request.out_trade_no)
            return PaymentAction(kind=ActionKind.QR, qr_content=code_url)

        payload["scene_info"] = {
            "payer_client_ip": _client_ip(request.client_ip),
            "h5_info": {"type": H5_SCENE_TYPE},
        }
        answer = self._client.call("POST", PATH_H5, payload=payload, reference=request.out_trade_no)
        h5_url = answer.data.get("h5_url")
        if not isinstance(h5_url, str) or urlsplit(h5_url).scheme not in ("https", "http"):
            raise GatewayUnavailable(f"POST {PATH_H5}: no h5_url in the answer")
        logger.info("wechatpay h5 prepay for %s: h5_url issued", request.out_trade_no)
        return PaymentAction(kind=ActionKind.REDIRECT, url=_with_redirect(h5_url, request))

    def query_payment(self, reference: TradeReference) -> TradeState:
        """Query by out_trade_no (§6.3) mapped to a TradeState (§5.3 trade_state).

        SUCCESS and REFUND are SUCCEEDED (amount_minor = amount.total);
        ORDER_NOT_EXIST (or ORDERNOTEXIST) is NOT_FOUND. An answer for
        another merchant, app or trade raises ResponseNotVerified; an
        unknown trade_state GatewayUnavailable (never guessed).
        """
        out_trade_no = reference.out_trade_no
        _check_out_trade_no(out_trade_no)
        path = PATH_BY_OUT_TRADE_NO.format(out_trade_no=path_segment(out_trade_no))
        try:
            answer = self._client.call("GET", path, query={"mchid": self.mchid}, reference=out_trade_no)
        except GatewayRejected as exc:
            if exc.sub_code in CODES_ORDER_NOT_EXIST:
                return TradeState(out_trade_no=out_trade_no, status=TradeStatus.NOT_FOUND)
            raise
        trade = answer.data
        label = f"GET {PATH_BY_OUT_TRADE_NO}"
        _check_answer(trade, "mchid", self.mchid, label)
        _check_answer(trade, "appid", self.appid, label)
        _check_answer(trade, "out_trade_no", out_trade_no, label)
        trade_state = trade.get("trade_state")
        status = TRADE_STATES.get(trade_state) if isinstance(trade_state, str) else None
        if status is None:
            raise GatewayUnavailable(f"{label}: unknown trade_state {_short(trade_state)}")
        paid = status is TradeStatus.SUCCEEDED
        amount = trade.get("amount")
        if isinstance(amount, dict) and amount.get("currency", CURRENCY) != CURRENCY:
            raise GatewayUnavailable(f"{label}: amount.currency {_short(amount.get('currency'))} is not {CURRENCY}")
        return TradeState(
            out_trade_no=out_trade_no,
            status=status,
            gateway_trade_no=_answer_id(trade, "transaction_id", label, required=paid),
            amount_minor=_answer_fen(trade, "total", label, required=paid),
            paid_at=_answer_time(trade, "success_time", label, required=paid) if paid else None,
            raw=trade,
        )

    def close_payment(self, reference: TradeReference) -> CloseOutcome:
        """Close (§6.4), then query: a 204 alone is not proof.

        CLOSED when the query says CLOSED (or REVOKED, or PAYERROR: it can
        no longer be paid), or the close says ORDER_CLOSED; ALREADY_PAID
        when the query says SUCCESS/REFUND, or the close says ORDERPAID;
        NOT_FOUND when WeChat has no such trade. Raises GatewayUnavailable
        when the trade still looks payable after the close (ask again
        later), and GatewayRejected for other refusals.
        """
        out_trade_no = reference.out_trade_no
        _check_out_trade_no(out_trade_no)
        path = PATH_CLOSE.format(out_trade_no=path_segment(out_trade_no))
        try:
            self._client.call("POST", path, payload={"mchid": self.mchid}, reference=out_trade_no)
        except GatewayRejected as exc:
            if exc.sub_code in CODES_ORDER_CLOSED:
                return CloseOutcome.CLOSED
            if exc.sub_code in CODES_ORDER_PAID:
                return CloseOutcome.ALREADY_PAID
            if exc.sub_code in CODES_ORDER_NOT_EXIST:
                return CloseOutcome.NOT_FOUND
            raise
        state = self.query_payment(reference)
        logger.info("wechatpay close for %s: the query after it says %s", out_trade_no, state.status)
        if state.status is TradeStatus.SUCCEEDED:
            return CloseOutcome.ALREADY_PAID
        if state.status in (TradeStatus.CLOSED, TradeStatus.FAILED):
            return CloseOutcome.CLOSED
        if state.status is TradeStatus.NOT_FOUND:
            return CloseOutcome.NOT_FOUND
        raise GatewayUnavailable(f"POST {PATH_CLOSE}: accepted, but the trade is still {state.status}; close again")

    def parse_return(self, params: Mapping[str, str]) -> str:
        """The out_trade_no of the H5 `redirect_url` we built; unsigned, a hint to query.

        WeChat signs nothing on this return (it does not even say whether
        the shopper paid): the caller must query. Raises InvalidNotification
        for a missing or malformed out_trade_no.
        """
        out_trade_no = params.get("out_trade_no", "")
        if not isinstance(out_trade_no, str) or not OUT_TRADE_NO.fullmatch(out_trade_no):
            raise InvalidNotification("return without a well-formed out_trade_no")
        return out_trade_no

    # -- notifications --------------------------------------------------------

    def parse_notification(self, raw: RawNotification) -> PaymentNotification:
        """Verify, decrypt and check a TRANSACTION.SUCCESS notification (§4, §5, §9).

        Signature headers, type, freshness against `raw.received_at`,
        serial and RSA signature first; then the envelope, the AES-GCM
        resource, event_type, trade_state SUCCESS, mchid, appid and
        currency. The amount is `amount.total`; dedupe_key the
        notification id. Raises InvalidNotification.
        """
        return payment_notification(raw, self._recipient)

    def parse_refund_notification(self, raw: RawNotification) -> RefundNotification:
        """Verify, decrypt and check a REFUND.SUCCESS / ABNORMAL / CLOSED notification (§5.4, §9).

        Raises InvalidNotification.
        """
        return refund_notification(raw, self._recipient)

    def acknowledge(self) -> Acknowledgement:
        return Acknowledgement(status=200, body=ACK_BODY, content_type=JSON_CONTENT_TYPE)

    def reject(self, reason: str) -> Acknowledgement:
        # §5.5: a 4xx makes WeChat send again; the reason is logged by the
        # caller, never told to the sender.
        return Acknowledgement(status=400, body=NACK_BODY, content_type=JSON_CONTENT_TYPE)

    # -- refunds --------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundState:
        """Create a refund under `out_refund_no` (§6.5); a 200 means accepted (§6.6).

        Names the payment by out_trade_no only, so that every retry sends
        identical parameters. The same out_refund_no refunds once: a replay
        answers the refund already made. NOT_ENOUGH (merchant balance)
        raises GatewayUnavailable: retry later with the same number. An
        answer for another refund or trade raises ResponseNotVerified, a
        different refund amount AmountMismatch; other refusals
        GatewayRejected.
        """
        _check_out_trade_no(request.out_trade_no)
        _check_out_refund_no(request.out_refund_no)
        refund = check_fen(request.amount_minor, "amount_minor")
        total = check_fen(request.total_minor, "total_minor")
        if refund > total:
            raise ValueError(f"refund {refund} fen is more than the payment's {total} fen")
        _check_currency(request.currency)
        payload: dict[str, Any] = {"out_trade_no": request.out_trade_no, "out_refund_no": request.out_refund_no}
        reason = " ".join(request.reason.split())[:REFUND_REASON_MAX_CHARS]
        if reason:
            payload["reason"] = reason
        notify_url = _check_notify_url(request.notify_url, required=False)
        if notify_url:
            payload["notify_url"] = notify_url
        payload["amount"] = {"refund": refund, "total": total, "currency": CURRENCY}
        try:
            answer = self._client.call("POST", PATH_REFUNDS, payload=payload, reference=request.out_refund_no)
        except GatewayRejected as exc:
            if exc.sub_code in CODES_NOT_ENOUGH:
                raise GatewayUnavailable(
                    f"POST {PATH_REFUNDS}: {exc.sub_code} {exc.gateway_message}: "
                    "retry later with the same out_refund_no"
                ) from exc
            raise
        state = _refund_state(answer.data, request.out_refund_no, out_trade_no=request.out_trade_no,
                              label=f"POST {PATH_REFUNDS}")
        if state.amount_minor != refund:
            raise AmountMismatch(
                f"wechatpay refund {request.out_refund_no}: WeChat holds {state.amount_minor} fen "
                f"under this number, the request says {refund}"
            )
        logger.info("wechatpay refund %s: %s", request.out_refund_no, state.status)
        return state

    def query_refund(self, reference: RefundReference) -> RefundState:
        """Query a refund by out_refund_no (§6.6); RESOURCE_NOT_EXISTS is NOT_FOUND.

        A refund of another trade under that number raises
        ResponseNotVerified.
        """
        out_refund_no, out_trade_no = reference.out_refund_no, reference.payment.out_trade_no
        _check_out_refund_no(out_refund_no)
        path = PATH_REFUND.format(out_refund_no=path_segment(out_refund_no))
        try:
            answer = self._client.call("GET", path, reference=out_refund_no)
        except GatewayRejected as exc:
            if exc.sub_code == CODE_RESOURCE_NOT_EXISTS:
                return RefundState(out_refund_no=out_refund_no, status=GatewayRefundStatus.NOT_FOUND)
            raise
        return _refund_state(answer.data, out_refund_no, out_trade_no=out_trade_no, label=f"GET {PATH_REFUND}")

    # -- statements -----------------------------------------------------------

    def fetch_statement(self, day: date) -> StatementFile:
        """The ALL trade bill of `day`, SHA-1 checked after gunzip and kept as downloaded (§6.8).

        STATEMENT_CREATING raises NoStatement(NOT_YET) (try after 10:00
        Beijing time), NO_STATEMENT_EXIST NoStatement(NONE) (normal on a day
        without trades, a discrepancy on a day with some; some clients saw
        it with 404, so the code decides, §12.13). A link refused on download
        (it lives 30 s to 5 min, §12.4) is replaced by a new tradebill call,
        once. A file whose SHA-1 is not the announced one raises
        StatementIntegrityError (a GatewayUnavailable: ask again) and is
        never returned.
        """
        reference = f"bill {day.isoformat()}"
        for attempt in range(1, STATEMENT_LINK_ATTEMPTS + 1):
            hash_type, hash_value, url = self._tradebill(day, reference=reference)
            try:
                data = self._client.download(url, reference=reference)
            except DownloadRefused:
                if attempt == STATEMENT_LINK_ATTEMPTS:
                    raise
                logger.info("wechatpay bill for %s: the download link was refused; asking for a new one",
                            day.isoformat())
                continue
            check_bill(io.BytesIO(data), hash_type=hash_type, hash_value=hash_value)
            logger.info("wechatpay bill for %s downloaded (%d bytes)", day.isoformat(), len(data))
            suffix = ".csv.gz" if data.startswith(GZIP_MAGIC) else ".csv"
            return StatementFile(day=day, filename=f"wechatpay_tradebill_{day:%Y%m%d}_{BILL_TYPE}{suffix}",
                                 content=data)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _tradebill(self, day: date, *, reference: str) -> tuple[str, str, str]:
        """(hash_type, hash_value, download_url) of the verified tradebill answer."""
        query = {"bill_date": day.isoformat(), "bill_type": BILL_TYPE, "tar_type": BILL_TAR_TYPE}
        try:
            answer = self._client.call("GET", PATH_TRADEBILL, query=query, reference=reference)
        except GatewayRejected as exc:
            if exc.sub_code == CODE_STATEMENT_CREATING:
                raise NoStatement(f"GET {PATH_TRADEBILL}: {exc.sub_code}: the bill is not ready yet",
                                  reason=NoStatementReason.NOT_YET) from exc
            if exc.sub_code == CODE_NO_STATEMENT_EXIST:
                raise NoStatement(f"GET {PATH_TRADEBILL}: {exc.sub_code}: no bill for {day.isoformat()}",
                                  reason=NoStatementReason.NONE) from exc
            raise
        hash_type = answer.data.get("hash_type")
        hash_value = answer.data.get("hash_value")
        url = answer.data.get("download_url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("https", "http") or not urlsplit(url).netloc:
            raise GatewayUnavailable(f"GET {PATH_TRADEBILL}: no download_url")
        if not isinstance(hash_type, str) or not isinstance(hash_value, str):
            raise StatementIntegrityError(f"GET {PATH_TRADEBILL}: no hash_type/hash_value")
        return hash_type, hash_value, url

    def parse_statement(self, statement: StatementFile) -> Iterator[StatementLine]:
        """The bill's payment and refund lines (§6.9), read as a stream; StatementFormatError when malformed.

        StatementTotalsMismatch when the summary row disagrees with the rows.
        """
        with statement.open() as stream:
            yield from parse_trade_bill(stream, mchid=self.mchid)

    def statement_columns(self, statement: StatementFile) -> Iterator[Any]:
        """The same lines in bulk (payments.gateways.statement_columns); plain bills only."""
        with statement.open() as stream:
            yield from trade_bill_columns(stream, mchid=self.mchid)


# -- helpers ------------------------------------------------------------------


def _short(value: object) -> str:
    if value is None or isinstance(value, str | int):
        return repr(value)[:48]
    return f"<{type(value).__name__}>"


def _check_out_trade_no(value: str) -> None:
    if not isinstance(value, str) or not OUT_TRADE_NO.fullmatch(value):
        raise ValueError(f"out_trade_no must be 6 to 32 letters, digits, '_' or '-': {value!r}")


def _check_out_refund_no(value: str) -> None:
    if not isinstance(value, str) or not OUT_REFUND_NO.fullmatch(value):
        raise ValueError(f"out_refund_no must be 1 to 64 letters, digits or '_-|*@': {value!r}")


def _check_currency(currency: str) -> None:
    if currency != CURRENCY:
        raise ValueError(f"WeChat Pay trades here are in {CURRENCY}, not {currency!r}")


def _check_notify_url(url: str, *, required: bool) -> str:
    """§5: an absolute http(s) URL without a query string (WeChat drops or refuses one)."""
    if not url:
        if required:
            raise ValueError("WeChat Pay payments need a notify_url")
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"notify_url must be an absolute http(s) URL: {url!r}")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"notify_url must not carry a query string or fragment: {url!r}")
    if len(url) > NOTIFY_URL_MAX_CHARS:
        raise ValueError(f"notify_url is longer than {NOTIFY_URL_MAX_CHARS} characters")
    return url


def _description(subject: str, *, fallback: str) -> str:
    cleaned = " ".join(subject.split())
    return (cleaned or fallback)[:DESCRIPTION_MAX_CHARS]


def _client_ip(value: str) -> str:
    """§6.2: H5 requires the shopper's IP; without a usable one, say loopback."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return FALLBACK_CLIENT_IP


def _with_redirect(h5_url: str, request: PaymentRequest) -> str:
    if not request.return_url:
        return h5_url
    separator = "&" if "?" in request.return_url else "?"
    back = f"{request.return_url}{separator}out_trade_no={request.out_trade_no}"
    joiner = "&" if "?" in h5_url else "?"
    return f"{h5_url}{joiner}{H5_REDIRECT_PARAMETER}={quote(back, safe='')}"


def _check_answer(node: Mapping[str, Any], name: str, expected: str, label: str) -> None:
    """A verified answer about another merchant, app or trade is never a result."""
    if node.get(name) != expected:
        raise ResponseNotVerified(f"{label}: the answer names {name} {_short(node.get(name))}, not ours")


def _answer_id(node: Mapping[str, Any], name: str, label: str, *, required: bool) -> str:
    value = node.get(name)
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or not PROVIDER_ID.fullmatch(value):
        raise GatewayUnavailable(f"{label}: {name} is missing or malformed")
    return value


def _answer_fen(node: Mapping[str, Any], name: str, label: str, *, required: bool) -> int | None:
    amount = node.get("amount")
    value = amount.get(name) if isinstance(amount, dict) else None
    if value is None and not required:
        return None
    try:
        return check_fen(value, f"amount.{name}")
    except ValueError as exc:
        raise GatewayUnavailable(f"{label}: {exc}") from None


def _answer_time(node: Mapping[str, Any], name: str, label: str, *, required: bool) -> datetime | None:
    value = node.get(name)
    if value in (None, "") and not required:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise GatewayUnavailable(f"{label}: {name} is missing or not an RFC 3339 time") from None


def _refund_state(node: Mapping[str, Any], out_refund_no: str, *, out_trade_no: str, label: str) -> RefundState:
    """A refund object (§6.6) about this refund of this trade, as a RefundState."""
    _check_answer(node, "out_refund_no", out_refund_no, label)
    if node.get("out_trade_no") not in (None, out_trade_no):
        raise ResponseNotVerified(f"{label}: refund {out_refund_no} belongs to another trade")
    raw_status = node.get("status")
    status = REFUND_STATUSES.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        raise GatewayUnavailable(f"{label}: unknown refund status {_short(raw_status)}")
    succeeded = status is GatewayRefundStatus.SUCCEEDED
    message = ""
    if status is GatewayRefundStatus.ABNORMAL:
        message = "ABNORMAL: the money could not go back by the original route; settle it in the merchant platform"
    elif status is GatewayRefundStatus.CLOSED:
        message = "CLOSED: the refund failed for good; a new refund needs a new out_refund_no"
    return RefundState(
        out_refund_no=out_refund_no,
        status=status,
        amount_minor=_answer_fen(node, "refund", label, required=True),
        gateway_refund_id=_answer_id(node, "refund_id", label, required=True),
        refunded_at=_answer_time(node, "success_time", label, required=succeeded) if succeeded else None,
        message=message,
        raw=node,
    )
