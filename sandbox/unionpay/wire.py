"""What UnionPay says about a trade or refund: the fields of notifications,
front returns and query answers (docs/gateways-alipay-unionpay.md B6-B10).

A trade's `wire` keeps the request's txnTime, channelType, bizType,
encoding, payTimeout and reqReserved, and once the shopper acted its
traceNo, traceTime and the result code a query reports as origRespCode
(00 paid, 05 in flight, 01 failed). A refund's `wire` keeps its txnTime and
traceNo, and whether a fault rule makes it fail.
"""
from __future__ import annotations

from sandbox import config
from sandbox.models import Refund, Trade
from sandbox.unionpay.keyring import Signer, unionpay_signer
from sandbox.unionpay.messages import CURRENCY_CODE, SIGN_METHOD, VERSION, message, settle_date, short_time
from sandbox.unionpay.messages import sign as rsa_sign

PROVIDER = "unionpay"
TXN_CONSUME = "01"
TXN_REFUND = "04"
# What a query says of the original transaction, by sandbox status.
PAID_CODE = "00"
IN_FLIGHT_CODE = "05"
FAILED_CODE = "01"


def signed(fields: dict[str, str], signer: Signer | None = None) -> dict[str, str]:
    """Add signPubKeyCert, then the signature over everything (B4, B16)."""
    signer = signer or unionpay_signer()
    fields = {**fields, "signPubKeyCert": signer.certificate_pem}
    fields.pop("signature", None)
    fields["signature"] = rsa_sign(fields, signer.key)
    return fields


def common_fields(encoding: str = "UTF-8") -> dict[str, str]:
    return {"version": VERSION, "encoding": encoding, "signMethod": SIGN_METHOD, "accessType": "0",
            "merId": config.UNIONPAY_MER_ID}


def consume_fields(trade: Trade, *, resp_code: str = PAID_CODE) -> dict[str, str]:
    """B7: a consume notification's fields, as its front return carries them too."""
    wire = trade.wire
    fields = {
        **common_fields(wire.get("encoding", "UTF-8")),
        "bizType": wire.get("bizType", "000201"),
        "txnType": TXN_CONSUME,
        "txnSubType": "01",
        "orderId": trade.out_trade_no,
        "txnTime": wire["txnTime"],
        "txnAmt": str(trade.amount_minor),
        "currencyCode": CURRENCY_CODE,
        "respCode": resp_code,
        "respMsg": message(resp_code),
    }
    if trade.trade_no:
        fields["queryId"] = trade.trade_no
    if wire.get("traceNo"):
        fields.update(traceNo=wire["traceNo"], traceTime=wire["traceTime"])
    if trade.status == Trade.Status.PAID and trade.paid_at is not None:
        fields.update(settleAmt=str(trade.amount_minor), settleCurrencyCode=CURRENCY_CODE,
                      settleDate=settle_date(trade.paid_at), exchangeRate="0")
    if wire.get("reqReserved"):
        fields["reqReserved"] = wire["reqReserved"]
    return fields


def refund_fields(refund: Refund, *, resp_code: str = PAID_CODE) -> dict[str, str]:
    """B10: a refund notification's fields."""
    trade = refund.trade
    fields = {
        **common_fields(refund.wire.get("encoding", "UTF-8")),
        "bizType": refund.wire.get("bizType", "000201"),
        "txnType": TXN_REFUND,
        "txnSubType": "00",
        "orderId": refund.out_refund_no,
        "txnTime": refund.wire["txnTime"],
        "txnAmt": str(refund.amount_minor),
        "currencyCode": CURRENCY_CODE,
        "queryId": refund.refund_id,
        "origQryId": trade.trade_no or "",
        "traceNo": refund.wire.get("traceNo", ""),
        "traceTime": short_time(refund.created_at),
        "respCode": resp_code,
        "respMsg": message(resp_code),
    }
    if refund.status == Refund.Status.SUCCEEDED and refund.succeeded_at is not None:
        fields.update(settleAmt=str(refund.amount_minor), settleCurrencyCode=CURRENCY_CODE,
                      settleDate=settle_date(refund.succeeded_at))
    return fields


def trade_orig_resp_code(trade: Trade) -> str | None:
    """What a query reports as origRespCode; None: no such transaction (34)."""
    if trade.status == Trade.Status.PAID:
        return PAID_CODE
    if trade.status == Trade.Status.PENDING:
        return IN_FLIGHT_CODE
    if trade.status == Trade.Status.FAILED:
        return str(trade.wire.get("origRespCode", FAILED_CODE))
    # Announced (the shopper never submitted), closed or voided: unknown.
    return None


def refund_orig_resp_code(refund: Refund) -> str:
    if refund.status == Refund.Status.SUCCEEDED:
        return PAID_CODE
    if refund.status == Refund.Status.PROCESSING:
        return IN_FLIGHT_CODE
    return FAILED_CODE
