"""The WeChat Pay adapter for API v2: merchants on legacy credentials.

The same gateway as API v3 for the shop (code `wechatpay`, "WeChat Pay" on
the cashier page, the same notify and return URLs); settings choose this
class when the operator configures the API v2 key (config/gateway_choice.py).
Follows docs/gateways-wechatpay.md §10: the XML envelope (§10.1) read with
xml.py, the `sign` (§10.2, MD5 or HMAC-SHA256) made and checked with
signing.py, the endpoints (§10.3) in endpoints.py with `/secapi/pay/refund`
over mutual TLS (client.py), the notifications (§10.4, §10.5) in
notifications.py; the bill is the v3 file (§6.9), parsed by the v3
adapter's parser. Native (QR) and H5 (MWEB) payments only; JSAPI, APP and
micropay are not supported.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import ssl
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from payments.exceptions import GatewayNotConfigured, GatewayUnavailable, InvalidNotification
from payments.gateways.base import (
    Acknowledgement,
    ActionKind,
    Capabilities,
    CloseOutcome,
    Gateway,
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
)
from payments.gateways.wechatpay.formats import OUT_REFUND_NO, OUT_TRADE_NO, check_fen
from payments.gateways.wechatpay.statements import parse_trade_bill, trade_bill_columns
from payments.gateways.wechatpay_v2 import endpoints
from payments.gateways.wechatpay_v2.client import (
    ApiClient,
    ClientCertificate,
    Merchant,
    client_ssl_context,
    mutual_tls_session,
)
from payments.gateways.wechatpay_v2.formats import fen_text, format_compact_time
from payments.gateways.wechatpay_v2.notifications import (
    ACK_BODY,
    NACK_BODY,
    XML_CONTENT_TYPE,
    Recipient,
    payment_notification,
    refund_notification,
)
from payments.gateways.wechatpay_v2.signing import SignType, check_api_key, new_nonce

logger = logging.getLogger(__name__)

TRADE_TYPE_NATIVE = "NATIVE"
TRADE_TYPE_MWEB = "MWEB"  # H5 in a phone's browser
CURRENCY = "CNY"
BODY_MAX_CHARS = 127  # §10.3 body(127)
REFUND_DESC_MAX_CHARS = 80
NOTIFY_URL_MAX_CHARS = 256
FALLBACK_CLIENT_IP = "127.0.0.1"
H5_SCENE_TYPE = "Wap"
# The H5 page sends the browser to `redirect_url` (appended to mweb_url,
# URL-encoded) once the payment ends; it carries no result and no sign.
H5_REDIRECT_PARAMETER = "redirect_url"
# §10.3: mweb_url lives 5 minutes; the cashier redirects to it at once.
MWEB_URL_LIFETIME = timedelta(minutes=5)
# §12.9: v2 wants time_expire more than 5 minutes after the order; a later
# deadline than the order's only lets a late payment in, which the shop
# refunds automatically.
MIN_PAYABLE = timedelta(minutes=5, seconds=30)


class WechatPayV2Gateway(Gateway):
    """WeChat Pay Native (QR) and H5 (MWEB) payments, refunds and bills over API v2.

    Options: `mchid`, `appid`, `api_key` (the 32-character API v2 key),
    `sign_type` (`MD5`, the default, or `HMAC-SHA256`), `api_base`
    (`https://api.mch.weixin.qq.com`, or a base with its own path such as
    the sandbox's `https://127.0.0.1:8002/wechatpay`), `ca_bundle` (the CA
    that signs the API's server certificate; empty: requests' bundle), the
    client certificate for refunds as `client_cert_path` and
    `client_key_path` (PEM) or `client_p12_path` and `client_p12_password`,
    and the timeouts. `nonce` makes nonce_str values for tests.
    """

    code = "wechatpay"
    display_name = _("WeChat Pay")
    capabilities = Capabilities(
        methods=frozenset({PayMethod.QR, PayMethod.WAP}),
        # §10.3: closeorder is refused within five minutes of the order.
        close_delay=timedelta(minutes=5),
        notifies_refunds=True,
        # As in v3: a refund that ends REFUNDCLOSE is finished for good under
        # its number, and the services retry a CLOSED refund under a new one.
        refund_number_reusable_after_failure=True,
    )
    # §6.9: the same bill as v3: a Beijing calendar day; a refund row is
    # dated when it was applied for.
    statement_window = StatementWindow(refunds=RefundBillDay.REQUESTED)
    required_options = ("mchid", "appid", "api_key", "api_base")

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
        if options.get("api_key"):
            try:
                check_api_key(options["api_key"])
            except ValueError as exc:
                problems.append(f"api_key: {exc}")
        try:
            SignType(options.get("sign_type") or SignType.MD5)
        except ValueError:
            problems.append("sign_type must be MD5 or HMAC-SHA256")
        base = str(options.get("api_base") or "")
        if base:
            parts = urlsplit(base)
            if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
                problems.append("api_base must be an https URL without query or fragment (refunds need mutual TLS)")
        ca_bundle = str(options.get("ca_bundle") or "")
        if ca_bundle and not Path(ca_bundle).is_file():
            problems.append(f"ca_bundle: no file at {ca_bundle}")
        elif not (options.get("client_p12_path") or (options.get("client_cert_path") and
                                                      options.get("client_key_path"))):  # fmt: skip
            problems.append("no client certificate: set client_cert_path and client_key_path, or client_p12_path")
        else:
            try:
                client_ssl_context(_certificate(options), ca_bundle=ca_bundle)
            except (OSError, ValueError, ssl.SSLError) as exc:
                problems.append(f"client certificate: {_load_error(exc)}")
        return problems

    # -- configuration --------------------------------------------------------

    @property
    def mchid(self) -> str:
        return str(self.options["mchid"])

    @property
    def appid(self) -> str:
        return str(self.options["appid"])

    @cached_property
    def _api_key(self) -> str:
        try:
            return check_api_key(self.options.get("api_key"))
        except ValueError as exc:
            raise GatewayNotConfigured(f"wechatpay: api_key ({exc})") from exc

    @property
    def _ca_bundle(self) -> str:
        return str(self.options.get("ca_bundle") or "")

    @cached_property
    def _secure_session(self) -> requests.Session:
        try:
            context = client_ssl_context(_certificate(self.options), ca_bundle=self._ca_bundle)
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise GatewayNotConfigured(f"wechatpay: client certificate ({_load_error(exc)})") from exc
        return mutual_tls_session(context)

    @property
    def _client(self) -> ApiClient:
        return ApiClient(
            session=self.session,
            secure_session=lambda: self._secure_session,
            timeout=self.timeout,
            api_base=str(self.options["api_base"]),
            merchant=Merchant(appid=self.appid, mch_id=self.mchid, api_key=self._api_key,
                              sign_type=SignType(self.options.get("sign_type") or SignType.MD5)),  # fmt: skip
            ca_bundle=self._ca_bundle,
            nonce=self.nonce,
        )

    @property
    def _recipient(self) -> Recipient:
        return Recipient(appid=self.appid, mch_id=self.mchid, api_key=self._api_key)

    # -- paying ---------------------------------------------------------------

    def start_payment(self, request: PaymentRequest) -> PaymentAction:
        """`unifiedorder` NATIVE (QR: the `code_url`) or MWEB (WAP: go to `mweb_url`) (§10.3).

        The WAP action's URL carries `redirect_url` = return_url plus
        `?out_trade_no=...`, where WeChat sends the browser when it is done;
        mweb_url lives five minutes, so the cashier redirects at once.
        Raises ValueError for a request WeChat Pay cannot take,
        GatewayRejected (ORDERPAID, ORDERCLOSED, ...) and GatewayUnavailable
        (SYSTEMERROR after asking again with the identical request).
        """
        if request.method not in self.methods:
            raise ValueError(f"WeChat Pay offers Native (qr) and H5 (wap) payments, not {request.method}")
        _check_out_trade_no(request.out_trade_no)
        if request.currency != CURRENCY:
            raise ValueError(f"WeChat Pay trades here are in {CURRENCY}, not {request.currency!r}")
        deadline = max(request.expires_at, self.clock() + MIN_PAYABLE)
        fields = {
            "body": _description(request.subject, fallback=request.out_trade_no),
            "out_trade_no": request.out_trade_no,
            "fee_type": CURRENCY,
            "total_fee": fen_text(request.amount_minor, "amount_minor"),
            "spbill_create_ip": _client_ip(request.client_ip),
            "time_expire": format_compact_time(deadline),
            "notify_url": _check_notify_url(request.notify_url, required=True),
        }
        if request.method == PayMethod.QR:
            # §10.3: product_id is required for NATIVE; one product per attempt.
            fields.update(trade_type=TRADE_TYPE_NATIVE, product_id=request.out_trade_no)
            answer = endpoints.unified_order(self._client, fields, reference=request.out_trade_no)
            code_url = answer.get("code_url", "")
            if not code_url:
                raise GatewayUnavailable(f"POST {endpoints.PATH_UNIFIEDORDER}: no code_url in the answer")
            logger.info("wechatpay v2 native order for %s: QR code issued", request.out_trade_no)
            return PaymentAction(kind=ActionKind.QR, qr_content=code_url)
        fields.update(trade_type=TRADE_TYPE_MWEB, scene_info=_scene_info(request))
        answer = endpoints.unified_order(self._client, fields, reference=request.out_trade_no)
        mweb_url = answer.get("mweb_url", "")
        if urlsplit(mweb_url).scheme not in ("https", "http"):
            raise GatewayUnavailable(f"POST {endpoints.PATH_UNIFIEDORDER}: no mweb_url in the answer")
        logger.info("wechatpay v2 h5 order for %s: mweb_url issued (valid %s)", request.out_trade_no,
                    MWEB_URL_LIFETIME)
        return PaymentAction(kind=ActionKind.REDIRECT, url=_with_redirect(mweb_url, request))

    def query_payment(self, reference: TradeReference) -> TradeState:
        """`orderquery` by out_trade_no (§10.3) as a TradeState; ORDERNOTEXIST is NOT_FOUND."""
        _check_out_trade_no(reference.out_trade_no)
        return endpoints.order_query(self._client, out_trade_no=reference.out_trade_no)

    def close_payment(self, reference: TradeReference) -> CloseOutcome:
        """`closeorder` (at least five minutes after the order, §10.3), then a query."""
        _check_out_trade_no(reference.out_trade_no)
        return endpoints.close_order(self._client, out_trade_no=reference.out_trade_no)

    def parse_return(self, params: Mapping[str, str]) -> str:
        """The out_trade_no of the H5 `redirect_url` we built; unsigned, a hint to query."""
        out_trade_no = params.get("out_trade_no", "")
        if not isinstance(out_trade_no, str) or not OUT_TRADE_NO.fullmatch(out_trade_no):
            raise InvalidNotification("return without a well-formed out_trade_no")
        return out_trade_no

    # -- notifications --------------------------------------------------------

    def parse_notification(self, raw: RawNotification) -> PaymentNotification:
        """Read, verify and check a v2 payment notification (§10.4); InvalidNotification otherwise."""
        return payment_notification(raw, self._recipient)

    def parse_refund_notification(self, raw: RawNotification) -> RefundNotification:
        """Read, decrypt and check a v2 refund notification (§10.5); InvalidNotification otherwise."""
        return refund_notification(raw, self._recipient)

    def acknowledge(self) -> Acknowledgement:
        return Acknowledgement(status=200, body=ACK_BODY, content_type=XML_CONTENT_TYPE)

    def reject(self, reason: str) -> Acknowledgement:
        # A 4xx with return_code FAIL makes WeChat send again (§10.4).
        return Acknowledgement(status=400, body=NACK_BODY, content_type=XML_CONTENT_TYPE)

    # -- refunds --------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundState:
        """`/secapi/pay/refund` over mutual TLS under `out_refund_no`: PROCESSING when accepted.

        The result comes by notification or `refundquery`. Raises
        GatewayUnavailable (SYSTEMERROR, NOTENOUGH, TLS or transport
        failures: retry later with the same number), GatewayRejected,
        AmountMismatch and ValueError for a request WeChat cannot take.
        """
        _check_out_trade_no(request.out_trade_no)
        _check_out_refund_no(request.out_refund_no)
        refund = check_fen(request.amount_minor, "amount_minor")
        if refund > check_fen(request.total_minor, "total_minor"):
            raise ValueError(f"refund {refund} fen is more than the payment's {request.total_minor} fen")
        if request.currency != CURRENCY:
            raise ValueError(f"WeChat Pay trades here are in {CURRENCY}, not {request.currency!r}")
        reason = " ".join(request.reason.split())[:REFUND_DESC_MAX_CHARS]
        notify_url = _check_notify_url(request.notify_url, required=False)
        return endpoints.refund(self._client, request, reason=_xml_safe(reason), notify_url=notify_url)

    def query_refund(self, reference: RefundReference) -> RefundState:
        """`refundquery` by out_refund_no (§10.3); REFUNDNOTEXIST is NOT_FOUND."""
        _check_out_refund_no(reference.out_refund_no)
        return endpoints.refund_query(self._client, out_trade_no=reference.payment.out_trade_no,
                                      out_refund_no=reference.out_refund_no)

    # -- statements -----------------------------------------------------------

    def fetch_statement(self, day: date) -> StatementFile:
        """`downloadbill` ALL for `day`, gunzipped (§10.3, §6.9).

        "No Bill Exist" raises NoStatement (NONE), "Bill Creating" NoStatement
        (NOT_YET), as the v3 adapter does.
        """
        content = endpoints.download_bill(self._client, day=day)
        logger.info("wechatpay v2 bill for %s downloaded (%d bytes)", day.isoformat(), len(content))
        return StatementFile(day=day, filename=f"wechatpay_tradebill_{day:%Y%m%d}_{endpoints.BILL_TYPE}.csv",
                             content=content)  # fmt: skip

    def parse_statement(self, statement: StatementFile) -> Iterator[StatementLine]:
        """The bill's payment and refund lines: the v3 parser, the file being the same (§6.9)."""
        with statement.open() as stream:
            yield from parse_trade_bill(stream, mchid=self.mchid)

    def statement_columns(self, statement: StatementFile) -> Iterator[Any]:
        """The same lines in bulk: the v3 bulk reader (payments.gateways.statement_columns)."""
        with statement.open() as stream:
            yield from trade_bill_columns(stream, mchid=self.mchid)


# -- helpers ------------------------------------------------------------------


def _certificate(options: Mapping[str, Any]) -> ClientCertificate:
    return ClientCertificate(
        cert_path=str(options.get("client_cert_path") or ""),
        key_path=str(options.get("client_key_path") or ""),
        p12_path=str(options.get("client_p12_path") or ""),
        p12_password=str(options.get("client_p12_password") or ""),
    )


def _load_error(exc: BaseException) -> str:
    # Never a key's content: the type and the library's short reason only.
    if isinstance(exc, FileNotFoundError):
        return f"no file at {exc.filename}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read {exc.filename} ({exc.strerror})"
    return str(exc)[:200] or type(exc).__name__


def _check_out_trade_no(value: str) -> None:
    if not isinstance(value, str) or not OUT_TRADE_NO.fullmatch(value):
        raise ValueError(f"out_trade_no must be 6 to 32 letters, digits, '_' or '-': {value!r}")


def _check_out_refund_no(value: str) -> None:
    if not isinstance(value, str) or not OUT_REFUND_NO.fullmatch(value):
        raise ValueError(f"out_refund_no must be 1 to 64 letters, digits or '_-|*@': {value!r}")


def _check_notify_url(url: str, *, required: bool) -> str:
    """§10.3: an absolute http(s) URL without a query string."""
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


def _xml_safe(text: str) -> str:
    # XML 1.0 cannot carry most control characters; a product name may.
    return "".join(char for char in text if char >= " " or char in "\t")


def _description(subject: str, *, fallback: str) -> str:
    cleaned = " ".join(_xml_safe(subject).split())
    return (cleaned or fallback)[:BODY_MAX_CHARS]


def _client_ip(value: str) -> str:
    """MWEB requires the shopper's IP; without a usable one, say loopback."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return FALLBACK_CLIENT_IP


def _scene_info(request: PaymentRequest) -> str:
    """§10.3 MWEB scene_info: the site the shopper pays from, as JSON text."""
    site = urlsplit(request.return_url or request.notify_url)
    info = {"h5_info": {"type": H5_SCENE_TYPE, "wap_url": f"{site.scheme}://{site.netloc}", "wap_name": site.netloc}}
    return json.dumps(info, ensure_ascii=False, separators=(",", ":"))


def _with_redirect(mweb_url: str, request: PaymentRequest) -> str:
    if not request.return_url:
        return mweb_url
    separator = "&" if "?" in request.return_url else "?"
    back = f"{request.return_url}{separator}out_trade_no={request.out_trade_no}"
    joiner = "&" if "?" in mweb_url else "?"
    return f"{mweb_url}{joiner}{H5_REDIRECT_PARAMETER}={quote(back, safe='')}"
