"""The API v2 endpoints the shop calls, each read into the interface's values.

docs/gateways-wechatpay.md §10.3: `unifiedorder`, `orderquery`,
`closeorder`, `refund` (over mutual TLS), `refundquery`, `downloadbill`;
the trade and refund states of §5.3 and §10.3-§10.5; what to retry from §8,
§10.3 and §11. Each function takes the ApiClient and plain values and
returns the interface's dataclasses, so the adapter's methods stay thin.

How `result_code` FAIL answers are sorted:
- SYSTEMERROR, BIZERR_NEED_RETRY, FREQUENCY_LIMITED, INVALID_REQ_TOO_MUCH:
  the outcome is unknown or postponed: GatewayUnavailable (ask again with
  the identical parameters, later; `unifiedorder` asks again at once);
- NOTENOUGH on a refund (the merchant's balance): GatewayUnavailable, kept
  for a later retry under the same out_refund_no;
- ORDERNOTEXIST, REFUNDNOTEXIST: "no such trade/refund", read as NOT_FOUND;
- ORDERPAID, ORDERCLOSED on a close: the trade is paid / already closed;
- anything else: GatewayRejected(code="FAIL", sub_code=<err_code>), final.
"""
from __future__ import annotations

import gzip
import io
import logging
import zlib
from collections.abc import Mapping
from datetime import date, datetime

from payments.exceptions import (
    AmountMismatch,
    GatewayRejected,
    GatewayUnavailable,
    NoStatement,
    NoStatementReason,
    ResponseNotVerified,
    StatementIntegrityError,
)
from payments.gateways.base import (
    CloseOutcome,
    GatewayRefundStatus,
    RefundRequest,
    RefundState,
    TradeState,
    TradeStatus,
)
from payments.gateways.wechatpay.formats import PROVIDER_ID
from payments.gateways.wechatpay.statements import MAX_BILL_BYTES
from payments.gateways.wechatpay_v2.client import FAIL, GZIP_MAGIC, SUCCESS, ApiClient
from payments.gateways.wechatpay_v2.formats import (
    BILL_DATE_FORMAT,
    fen_text,
    parse_compact_time,
    parse_fen,
    parse_refund_time,
)

logger = logging.getLogger(__name__)

PATH_UNIFIEDORDER = "/pay/unifiedorder"
PATH_ORDERQUERY = "/pay/orderquery"
PATH_CLOSEORDER = "/pay/closeorder"
PATH_REFUND = "/secapi/pay/refund"
PATH_REFUNDQUERY = "/pay/refundquery"
PATH_DOWNLOADBILL = "/pay/downloadbill"

CURRENCY = "CNY"
BILL_TYPE = "ALL"  # successful payments plus refunds started that day (§6.8)
BILL_TAR_TYPE = "GZIP"

CODE_SYSTEMERROR = "SYSTEMERROR"
CODES_ASK_AGAIN_LATER = frozenset({CODE_SYSTEMERROR, "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED",
                                   "INVALID_REQ_TOO_MUCH"})  # fmt: skip
CODE_NOTENOUGH = "NOTENOUGH"
CODE_ORDERNOTEXIST = "ORDERNOTEXIST"
CODE_ORDERPAID = "ORDERPAID"
CODE_ORDERCLOSED = "ORDERCLOSED"
CODE_REFUNDNOTEXIST = "REFUNDNOTEXIST"
# unifiedorder asks again at once, with the identical request, this many times in all.
UNIFIEDORDER_ATTEMPTS = 3
# downloadbill's error answers say what happened in return_msg (§10.3, §12.18).
BILL_NOT_FOUND = "No Bill Exist"
BILL_CREATING = "Bill Creating"
# The interface's name for "no bill that day" (as the v3 adapter raises it).
SUB_CODE_NO_STATEMENT = "NO_STATEMENT_EXIST"

# §5.3 trade_state, plus v2's ACCEPT ("received, waiting to debit").
TRADE_STATES = {
    "SUCCESS": TradeStatus.SUCCEEDED,
    "REFUND": TradeStatus.SUCCEEDED,  # paid, then refunded in part or in full
    "NOTPAY": TradeStatus.PENDING,
    "USERPAYING": TradeStatus.PENDING,
    "ACCEPT": TradeStatus.PENDING,
    "CLOSED": TradeStatus.CLOSED,
    "REVOKED": TradeStatus.CLOSED,
    "PAYERROR": TradeStatus.FAILED,
}
# §10.3 refund_status_$n and §10.5 refund_status (CHANGE is abnormal, §12.3).
REFUND_STATUSES = {
    "PROCESSING": GatewayRefundStatus.PROCESSING,
    "SUCCESS": GatewayRefundStatus.SUCCEEDED,
    "REFUNDCLOSE": GatewayRefundStatus.CLOSED,
    "CHANGE": GatewayRefundStatus.ABNORMAL,
}
# A refund query lists at most this many refunds of one order (§10.3 says 50).
MAX_LISTED_REFUNDS = 100


def require_success(answer: Mapping[str, str], path: str, *, later: frozenset[str] = CODES_ASK_AGAIN_LATER) -> None:
    """Raise unless `result_code` is SUCCESS (see the module docstring for the sorting)."""
    result_code = answer.get("result_code")
    if result_code == SUCCESS:
        return
    if result_code != FAIL:
        raise GatewayUnavailable(f"POST {path}: the answer has no result_code")
    code = answer.get("err_code", "")[:64]
    message = answer.get("err_code_des", "")[:200]
    if code in later:
        raise GatewayUnavailable(f"POST {path}: {code} {message}: ask again later with the same parameters")
    raise GatewayRejected(message, code=FAIL, sub_code=code)


def _short(value: object) -> str:
    return repr(value)[:48] if isinstance(value, str | None) else f"<{type(value).__name__}>"


def _same(answer: Mapping[str, str], name: str, expected: str, path: str) -> None:
    if answer.get(name) != expected:
        raise ResponseNotVerified(f"POST {path}: the answer names {name} {_short(answer.get(name))}, not ours")


def _provider_id(answer: Mapping[str, str], name: str, path: str) -> str:
    value = answer.get(name, "")
    if not PROVIDER_ID.fullmatch(value):
        raise GatewayUnavailable(f"POST {path}: {name} is missing or malformed")
    return value


def _fen(answer: Mapping[str, str], name: str, path: str) -> int:
    try:
        return parse_fen(answer.get(name, ""), name)
    except ValueError as exc:
        raise GatewayUnavailable(f"POST {path}: {exc}") from None


def _currency(answer: Mapping[str, str], name: str, path: str) -> None:
    if answer.get(name, CURRENCY) not in (CURRENCY, ""):
        raise GatewayUnavailable(f"POST {path}: {name} {_short(answer.get(name))} is not {CURRENCY}")


# -- paying -------------------------------------------------------------------


def unified_order(client: ApiClient, fields: Mapping[str, str], *, reference: str) -> dict[str, str]:
    """`unifiedorder`; the verified SUCCESS answer (its code_url / mweb_url / prepay_id).

    SYSTEMERROR is asked again at once with the identical request (§10.3:
    "retry with the same parameters"), then raises GatewayUnavailable.
    ORDERPAID, ORDERCLOSED and the rest raise GatewayRejected.
    """
    answer = client.call(PATH_UNIFIEDORDER, fields, reference=reference, attempts=UNIFIEDORDER_ATTEMPTS,
                         retry_codes=frozenset({CODE_SYSTEMERROR}))  # fmt: skip
    require_success(answer, PATH_UNIFIEDORDER)
    return answer


def order_query(client: ApiClient, *, out_trade_no: str) -> TradeState:
    """`orderquery` by out_trade_no as a TradeState; ORDERNOTEXIST is NOT_FOUND.

    SUCCESS and REFUND are SUCCEEDED with `total_fee`, `transaction_id`
    and `time_end`. An unknown trade_state raises GatewayUnavailable
    (never guessed); an answer about another trade ResponseNotVerified.
    """
    answer = client.call(PATH_ORDERQUERY, {"out_trade_no": out_trade_no}, reference=out_trade_no)
    if answer.get("result_code") == FAIL and answer.get("err_code") == CODE_ORDERNOTEXIST:
        return TradeState(out_trade_no=out_trade_no, status=TradeStatus.NOT_FOUND)
    require_success(answer, PATH_ORDERQUERY)
    _same(answer, "out_trade_no", out_trade_no, PATH_ORDERQUERY)
    status = TRADE_STATES.get(answer.get("trade_state", ""))
    if status is None:
        raise GatewayUnavailable(f"POST {PATH_ORDERQUERY}: unknown trade_state {_short(answer.get('trade_state'))}")
    if status is not TradeStatus.SUCCEEDED:
        return TradeState(out_trade_no=out_trade_no, status=status, raw=answer)
    _currency(answer, "fee_type", PATH_ORDERQUERY)
    try:
        paid_at = parse_compact_time(answer.get("time_end", ""))
    except ValueError:
        raise GatewayUnavailable(f"POST {PATH_ORDERQUERY}: time_end is missing or malformed") from None
    return TradeState(
        out_trade_no=out_trade_no,
        status=status,
        gateway_trade_no=_provider_id(answer, "transaction_id", PATH_ORDERQUERY),
        amount_minor=_fen(answer, "total_fee", PATH_ORDERQUERY),
        paid_at=paid_at,
        raw=answer,
    )


def close_order(client: ApiClient, *, out_trade_no: str) -> CloseOutcome:
    """`closeorder`, then `orderquery`: an accepted close alone is not proof (§6.4).

    ORDERPAID is ALREADY_PAID, ORDERCLOSED is CLOSED. SYSTEMERROR (also
    the answer within five minutes of the order, §12.18) raises
    GatewayUnavailable: close again later.
    """
    answer = client.call(PATH_CLOSEORDER, {"out_trade_no": out_trade_no}, reference=out_trade_no)
    code = answer.get("err_code") if answer.get("result_code") == FAIL else None
    if code == CODE_ORDERPAID:
        return CloseOutcome.ALREADY_PAID
    if code == CODE_ORDERCLOSED:
        return CloseOutcome.CLOSED
    if code == CODE_ORDERNOTEXIST:
        return CloseOutcome.NOT_FOUND
    require_success(answer, PATH_CLOSEORDER)
    state = order_query(client, out_trade_no=out_trade_no)
    logger.info("wechatpay v2 close for %s: the query after it says %s", out_trade_no, state.status)
    if state.status is TradeStatus.SUCCEEDED:
        return CloseOutcome.ALREADY_PAID
    if state.status in (TradeStatus.CLOSED, TradeStatus.FAILED):
        return CloseOutcome.CLOSED
    if state.status is TradeStatus.NOT_FOUND:
        return CloseOutcome.NOT_FOUND
    raise GatewayUnavailable(f"POST {PATH_CLOSEORDER}: accepted, but the trade is still {state.status}; close again")


# -- refunds ------------------------------------------------------------------


def refund(client: ApiClient, request: RefundRequest, *, reason: str, notify_url: str) -> RefundState:
    """`/secapi/pay/refund` over mutual TLS under `out_refund_no`; PROCESSING when accepted.

    The answer never says the refund is done (§12.17: it carries no
    status): the notification (§10.5) or `refundquery` tells. The payment
    is named by out_trade_no only, so that every retry sends identical
    parameters; the same out_refund_no refunds once. SYSTEMERROR,
    BIZERR_NEED_RETRY and NOTENOUGH raise GatewayUnavailable (retry later,
    same number); an answer for another amount AmountMismatch.
    """
    fields = {
        "out_trade_no": request.out_trade_no,
        "out_refund_no": request.out_refund_no,
        "total_fee": fen_text(request.total_minor, "total_minor"),
        "refund_fee": fen_text(request.amount_minor, "amount_minor"),
        "refund_fee_type": CURRENCY,
    }
    if reason:
        fields["refund_desc"] = reason
    if notify_url:
        fields["notify_url"] = notify_url
    answer = client.call(PATH_REFUND, fields, reference=request.out_refund_no)
    require_success(answer, PATH_REFUND, later=CODES_ASK_AGAIN_LATER | {CODE_NOTENOUGH})
    _same(answer, "out_refund_no", request.out_refund_no, PATH_REFUND)
    _same(answer, "out_trade_no", request.out_trade_no, PATH_REFUND)
    refunded = _fen(answer, "refund_fee", PATH_REFUND)
    if refunded != request.amount_minor or _fen(answer, "total_fee", PATH_REFUND) != request.total_minor:
        raise AmountMismatch(
            f"wechatpay refund {request.out_refund_no}: WeChat holds {refunded} fen of "
            f"{answer.get('total_fee')!r} under this number, the request says {request.amount_minor} "
            f"of {request.total_minor}"
        )
    logger.info("wechatpay v2 refund %s accepted", request.out_refund_no)
    return RefundState(
        out_refund_no=request.out_refund_no,
        status=GatewayRefundStatus.PROCESSING,
        amount_minor=refunded,
        gateway_refund_id=_provider_id(answer, "refund_id", PATH_REFUND),
        raw=answer,
    )


def refund_query(client: ApiClient, *, out_trade_no: str, out_refund_no: str) -> RefundState:
    """`refundquery` by out_refund_no; REFUNDNOTEXIST is NOT_FOUND.

    The answer lists refunds under `_$n` suffixes (§10.3); the one named
    out_refund_no is read. A refund of another trade raises
    ResponseNotVerified.
    """
    answer = client.call(PATH_REFUNDQUERY, {"out_refund_no": out_refund_no}, reference=out_refund_no)
    if answer.get("result_code") == FAIL and answer.get("err_code") == CODE_REFUNDNOTEXIST:
        return RefundState(out_refund_no=out_refund_no, status=GatewayRefundStatus.NOT_FOUND)
    require_success(answer, PATH_REFUNDQUERY)
    _same(answer, "out_trade_no", out_trade_no, PATH_REFUNDQUERY)
    index = _listed_index(answer, out_refund_no)
    raw_status = answer.get(f"refund_status_{index}", "")
    status = REFUND_STATUSES.get(raw_status)
    if status is None:
        raise GatewayUnavailable(f"POST {PATH_REFUNDQUERY}: unknown refund status {_short(raw_status)}")
    refunded_at: datetime | None = None
    if status is GatewayRefundStatus.SUCCEEDED:
        try:
            refunded_at = parse_refund_time(answer.get(f"refund_success_time_{index}", ""))
        except ValueError:
            raise GatewayUnavailable(f"POST {PATH_REFUNDQUERY}: refund_success_time_{index} is malformed") from None
    return RefundState(
        out_refund_no=out_refund_no,
        status=status,
        amount_minor=_fen(answer, f"refund_fee_{index}", PATH_REFUNDQUERY),
        gateway_refund_id=_provider_id(answer, f"refund_id_{index}", PATH_REFUNDQUERY),
        refunded_at=refunded_at,
        message=refund_status_message(status),
        raw=answer,
    )


def _listed_index(answer: Mapping[str, str], out_refund_no: str) -> int:
    try:
        count = int(answer.get("refund_count", ""))
    except ValueError:
        raise GatewayUnavailable(f"POST {PATH_REFUNDQUERY}: refund_count is missing") from None
    for index in range(min(count, MAX_LISTED_REFUNDS)):
        if answer.get(f"out_refund_no_{index}") == out_refund_no:
            return index
    raise ResponseNotVerified(f"POST {PATH_REFUNDQUERY}: the answer does not list refund {out_refund_no}")


def refund_status_message(status: GatewayRefundStatus) -> str:
    if status is GatewayRefundStatus.ABNORMAL:
        return "CHANGE: the money could not go back by the original route; settle it in the merchant platform"
    if status is GatewayRefundStatus.CLOSED:
        return "REFUNDCLOSE: the refund failed for good; a new refund needs a new out_refund_no"
    return ""


# -- the bill -----------------------------------------------------------------


def download_bill(client: ApiClient, *, day: date) -> bytes:
    """`downloadbill` for `day` (ALL, gzip): the uncompressed file (§6.9, the same as v3's).

    "No Bill Exist" raises NoStatement (NONE) and "Bill Creating" NoStatement
    (NOT_YET), as the v3 adapter does for its codes; a body that
    does not gunzip StatementIntegrityError. v2 announces no hash: the
    file is protected by TLS and checked against its own summary row.
    """
    reference = f"bill {day.isoformat()}"
    fields = {"bill_date": day.strftime(BILL_DATE_FORMAT), "bill_type": BILL_TYPE, "tar_type": BILL_TAR_TYPE}
    answer = client.download(PATH_DOWNLOADBILL, fields, reference=reference)
    if isinstance(answer, bytes):
        return _gunzip(answer) if answer.startswith(GZIP_MAGIC) else answer
    message = answer.get("return_msg", "")[:200]
    if answer.get("return_code") != FAIL:
        raise ResponseNotVerified(f"POST {PATH_DOWNLOADBILL}: an XML answer that is not an error")
    if message == BILL_NOT_FOUND:
        raise NoStatement(f"POST {PATH_DOWNLOADBILL}: {message}", reason=NoStatementReason.NONE)
    if message == BILL_CREATING:
        raise NoStatement(f"POST {PATH_DOWNLOADBILL}: {message}: the bill is not ready yet",
                          reason=NoStatementReason.NOT_YET)
    raise GatewayRejected(message, code=FAIL, sub_code=answer.get("error_code", "")[:64])


def _gunzip(data: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            content = stream.read(MAX_BILL_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise StatementIntegrityError(f"the bill does not gunzip ({type(exc).__name__})") from None
    if len(content) > MAX_BILL_BYTES:
        raise StatementIntegrityError(f"the bill inflates beyond {MAX_BILL_BYTES} bytes")
    return content
