"""The gateway interface: what every payment provider adapter implements.

An adapter speaks one provider's wire protocol and nothing else. It takes
and returns the frozen dataclasses below (amounts in integer minor units,
aware datetimes), never Django models, and knows nothing of orders: the
services in payments/ and refunds/ decide what a result means for an order.

Every adapter:
- signs what it sends and verifies what it receives before reading it;
- sets a timeout on every HTTP call and turns transport failures, 5xx and
  "system busy" answers into GatewayUnavailable (outcome unknown: retry the
  same request or query), and business refusals into GatewayRejected;
- converts money only at its edge (yuan strings for Alipay, fen for WeChat
  Pay and UnionPay) and checks the conversion is exact.

Statements (the daily bill): an adapter whose provider has them declares
its `statement_window` (which moments one bill day covers, and on which
day a refund is listed) and implements `fetch_statement` and
`parse_statement`. "No bill for that day" is the normalised NoStatement,
never a provider's error code.
"""
from __future__ import annotations

import enum
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from datetime import timezone as fixed_offset
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import requests
from django.utils import timezone

from payments.gateways.http_session import GatewaySession

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class PayMethod(enum.StrEnum):
    PAGE = "page"  # desktop browser goes to the provider's cashier page
    WAP = "wap"  # mobile browser goes to the provider's mobile page (Alipay wap, WeChat H5)
    QR = "qr"  # the shop shows a QR code that the shopper scans with the provider's app


class ReturnMethod(enum.StrEnum):
    """How the shopper's browser comes back to `return_url`."""

    GET = "GET"  # a redirect with the result in the query string (Alipay, WeChat Pay H5)
    POST = "POST"  # a form the provider's page posts (UnionPay frontUrl): CSRF-exempt, verified


@dataclass(frozen=True)
class Capabilities:
    """What a provider does, declared by its adapter and asked by the services.

    The services never try a call and catch NotImplementedError: they read
    these and take the provider's way.
    """

    methods: frozenset[PayMethod]
    # Can an unpaid trade be closed at the provider (close_payment)? Without
    # it, the deadline sent with the payment (PaymentRequest.expires_at) is
    # what stops the shopper paying: once it has passed, a query that finds
    # no payment is final and the attempt closes in the shop alone.
    closes_trades: bool = True
    # How soon after creating a trade the provider accepts its close.
    close_delay: timedelta = timedelta(0)
    # How the browser comes back to return_url.
    return_method: ReturnMethod = ReturnMethod.GET
    # Does the provider send refund notifications (parse_refund_notification)?
    notifies_refunds: bool = False
    # May a refund that failed be sent again under its own number? When not,
    # a retry gets a new number (the provider keeps the failed one for good).
    refund_number_reusable_after_failure: bool = True


@dataclass(frozen=True)
class TradeReference:
    """How a provider knows one attempt: our number, the time of its request,
    and the provider's own number once it gave one.

    `requested_at` is stored with the attempt before the first call and never
    changes: some providers (UnionPay: orderId + txnTime) identify a trade by
    both, so every later query must send the same time.
    """

    out_trade_no: str
    requested_at: datetime
    gateway_trade_no: str = ""


@dataclass(frozen=True)
class RefundReference:
    """How a provider knows one refund: its number, the time it was first
    submitted under that number, and the payment it gives money back from."""

    out_refund_no: str
    submitted_at: datetime
    payment: TradeReference


class ActionKind(enum.StrEnum):
    REDIRECT = "redirect"  # send the browser to `url` (GET)
    FORM = "form"  # POST `form_fields` to `url` from an auto-submitting form
    QR = "qr"  # render `qr_content` as a QR code


@dataclass(frozen=True)
class PaymentRequest:
    out_trade_no: str
    amount_minor: int
    currency: str
    subject: str
    method: PayMethod
    notify_url: str
    return_url: str
    # The provider refuses payment after this (Alipay time_expire, WeChat
    # time_expire, UnionPay payTimeout).
    expires_at: datetime
    quit_url: str = ""
    client_ip: str = ""
    description: str = ""
    # The attempt's stable request time (TradeReference.requested_at); a
    # provider that identifies trades by time sends it (UnionPay txnTime).
    requested_at: datetime | None = None


@dataclass(frozen=True)
class PaymentAction:
    """How the shopper pays: what the cashier does next."""

    kind: ActionKind
    url: str = ""
    form_fields: Mapping[str, str] = field(default_factory=dict)
    qr_content: str = ""


class TradeStatus(enum.StrEnum):
    NOT_FOUND = "not_found"  # the provider has no such trade (yet): not paid so far
    PENDING = "pending"  # exists, not paid yet
    SUCCEEDED = "succeeded"  # paid (also when refunded since, in part or in full)
    CLOSED = "closed"  # closed unpaid (timeout, close call)
    FAILED = "failed"  # payment failed for good


@dataclass(frozen=True)
class TradeState:
    """A verified answer to "what is the state of this trade?"."""

    out_trade_no: str
    status: TradeStatus
    gateway_trade_no: str = ""
    # The order amount the provider holds, when it says.
    amount_minor: int | None = None
    paid_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


class CloseOutcome(enum.StrEnum):
    CLOSED = "closed"  # closed now, or already closed
    NOT_FOUND = "not_found"  # never created at the provider: nothing to close
    ALREADY_PAID = "already_paid"  # too late: query it and apply the payment


@dataclass(frozen=True)
class RawNotification:
    """An incoming HTTP notification exactly as received."""

    body: bytes
    headers: Mapping[str, str]
    received_at: datetime
    content_type: str = ""
    remote_addr: str = ""

    def header(self, name: str) -> str:
        """Case-insensitive header lookup; "" when absent."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return ""


@dataclass(frozen=True)
class PaymentNotification:
    """A verified payment notification, already checked to be for our merchant."""

    out_trade_no: str
    status: TradeStatus
    amount_minor: int
    gateway_trade_no: str
    # Same for every re-send of the same notification (Alipay notify_id,
    # WeChat Pay notification id); unique per provider in the inbox.
    dedupe_key: str
    paid_at: datetime | None = None
    # The request time the provider echoes, when it identifies trades by
    # number and time (UnionPay txnTime): the services check it is the
    # attempt's own, so a notification of another transaction under the
    # same number is refused.
    requested_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


class GatewayRefundStatus(enum.StrEnum):
    """What a gateway says of a refund; the refund's own lifecycle is
    refunds.models.RefundStatus."""

    NOT_FOUND = "not_found"  # the provider has no refund under that number
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    CLOSED = "closed"  # failed for good; a new refund needs a new number
    ABNORMAL = "abnormal"  # money could not go back by the original route: staff


@dataclass(frozen=True)
class RefundRequest:
    out_trade_no: str
    out_refund_no: str
    amount_minor: int
    # The payment's own amount (WeChat Pay requires it with every refund).
    total_minor: int
    currency: str
    reason: str = ""
    notify_url: str = ""
    gateway_trade_no: str = ""
    # The refund's submission time under this number (RefundReference.
    # submitted_at); the same on every retry.
    requested_at: datetime | None = None


@dataclass(frozen=True)
class RefundState:
    out_refund_no: str
    status: GatewayRefundStatus
    amount_minor: int | None = None
    gateway_refund_id: str = ""
    refunded_at: datetime | None = None
    message: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RefundNotification:
    """A verified refund notification, already checked to be for our merchant.

    It names the payment by whatever the provider sends: our out_trade_no,
    or only the provider's trade number (UnionPay origQryId); "" when not
    sent. The refund itself is always named by our out_refund_no.
    """

    out_trade_no: str
    out_refund_no: str
    status: GatewayRefundStatus
    amount_minor: int
    total_minor: int | None
    gateway_refund_id: str
    dedupe_key: str
    refunded_at: datetime | None = None
    gateway_trade_no: str = ""
    # The refund's request time as the provider echoes it (UnionPay txnTime).
    requested_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Acknowledgement:
    """The exact HTTP answer a provider expects to a notification."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


# China has kept UTC+8 without daylight saving since 1991; every provider
# here dates its bills in Beijing time.
BEIJING = fixed_offset(timedelta(hours=8), "Asia/Shanghai")


class RefundBillDay(enum.StrEnum):
    """On which day's bill a provider lists a refund."""

    COMPLETED = "completed"  # the day the money went back (Alipay, UnionPay)
    REQUESTED = "requested"  # the day it was applied for (WeChat Pay)


@dataclass(frozen=True)
class StatementWindow:
    """The stretch of time one bill day covers, on the provider's clock.

    Bill day D starts `starts_at` after midnight of D in `zone` (negative:
    the evening before, as UnionPay's 23:00 cut-off) and lasts one day.
    A payment belongs to the day its payment time falls in; a refund to the
    day of the moment `refunds` names.
    """

    zone: tzinfo = BEIJING
    starts_at: timedelta = timedelta(0)
    refunds: RefundBillDay = RefundBillDay.COMPLETED

    def bounds(self, day: date) -> tuple[datetime, datetime]:
        """[start, end) of bill day `day`, as aware datetimes."""
        start = datetime.combine(day, time.min, tzinfo=self.zone) + self.starts_at
        return start, start + timedelta(days=1)

    def day_of(self, moment: datetime) -> date:
        """The bill day a moment (aware) belongs to."""
        return (moment.astimezone(self.zone) - self.starts_at).date()


@dataclass(frozen=True)
class StatementFile:
    """A provider's bill for one day, downloaded and integrity-checked.

    The bytes are those the provider sent (a ZIP or gzip stays compressed),
    either held in `content` or behind `opener`, which opens a binary,
    seekable stream of them: a big day's bill is then read as a stream and
    never held whole in memory.
    """

    day: date
    filename: str
    content: bytes = b""
    opener: Callable[[], BinaryIO] | None = field(default=None, compare=False, repr=False)

    def open(self) -> BinaryIO:
        """A fresh binary stream of the bill's bytes; the caller closes it."""
        if self.opener is not None:
            return self.opener()
        return io.BytesIO(self.content)


class StatementLineKind(enum.StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class StatementLine:
    kind: StatementLineKind
    out_trade_no: str
    gateway_trade_no: str
    # Always positive; `kind` says which way the money moved.
    amount_minor: int
    currency: str = "CNY"
    out_refund_no: str = ""
    gateway_refund_id: str = ""
    # What the provider charged for this line in whole fen; negative when it
    # gave a fee back (on refund lines).
    fee_minor: int = 0
    occurred_at: datetime | None = None
    # The provider's own word for the line's state (WeChat Pay's refund
    # status, say); "" when every line of the bill is a completed movement.
    status: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 15.0


class Gateway(ABC):
    """One payment provider. Subclasses live in payments/gateways/<code>.py."""

    code: ClassVar[str]
    # Shown to shoppers: a lazy translation (gettext_lazy) or a plain str.
    display_name: ClassVar[StrOrPromise]
    # Set by every adapter class; an instance may narrow its own (the fake).
    capabilities: Capabilities
    # Option names (keys of the options mapping) that must be set.
    required_options: ClassVar[tuple[str, ...]] = ()
    # The request headers (lower case) a notification's verification reads;
    # the inbox stores these and drops every other one (Cookie,
    # Authorization, anything unknown) before the notification is stored.
    notification_headers: ClassVar[frozenset[str]] = frozenset({"content-type"})
    # None: the provider has no daily bill here, and nothing reconciles it.
    statement_window: ClassVar[StatementWindow | None] = None

    def __init__(
        self,
        options: Mapping[str, Any],
        *,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.options = options
        self.session = session or GatewaySession()
        self.clock = clock
        self.timeout = (
            float(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
            float(options.get("read_timeout", DEFAULT_READ_TIMEOUT)),
        )

    @classmethod
    def configuration_problems(cls, options: Mapping[str, Any]) -> list[str]:
        """What stops this gateway from working with these options ([] = ready).

        The default checks that every required option is set; adapters add
        checks such as "the key file exists and loads".
        """
        return [f"{name} is not set" for name in cls.required_options if not options.get(name)]

    @staticmethod
    def key_file_problems(
        options: Mapping[str, Any], loaders: Mapping[str, Callable[[bytes], Any]]
    ) -> list[str]:
        """For each option naming a key file: it exists, reads and loads with its loader."""
        problems = []
        for option, loader in loaders.items():
            path = options.get(option)
            if not path:
                continue
            try:
                loader(Path(path).read_bytes())
            except FileNotFoundError:
                problems.append(f"{option}: no file at {path}")
            except OSError as exc:
                problems.append(f"{option}: cannot read {path} ({exc.strerror})")
            except ValueError as exc:
                problems.append(f"{option}: {path} does not load ({exc})")
        return problems

    # -- paying ---------------------------------------------------------------

    @abstractmethod
    def start_payment(self, request: PaymentRequest) -> PaymentAction:
        """Create the payment at the provider (or sign the redirect); say how to pay."""

    @property
    def methods(self) -> frozenset[PayMethod]:
        return self.capabilities.methods

    @abstractmethod
    def query_payment(self, reference: TradeReference) -> TradeState:
        """Ask the provider for the trade's state. Never guesses: unknown raises."""

    @abstractmethod
    def close_payment(self, reference: TradeReference) -> CloseOutcome:
        """Close an unpaid trade so that it can no longer be paid.

        Only called when `capabilities.closes_trades`.
        """

    @abstractmethod
    def parse_return(self, params: Mapping[str, str]) -> str:
        """Verify the browser's return parameters; return the out_trade_no.

        `params` are the query string's, or the posted form's when
        `capabilities.return_method` is POST. The return proves nothing about
        payment: callers query before believing anything. Raises
        InvalidNotification when forged.
        """

    # -- notifications --------------------------------------------------------

    @abstractmethod
    def parse_notification(self, raw: RawNotification) -> PaymentNotification:
        """Verify (signature first), decode and check a payment notification.

        Checks that it is addressed to our merchant/app. Freshness is judged
        against `raw.received_at`, so a stored notification can be processed
        again later. Raises InvalidNotification.
        """

    def parse_refund_notification(self, raw: RawNotification) -> RefundNotification:
        """Verify and read a refund notification; only called when
        `capabilities.notifies_refunds`. Raises InvalidNotification."""
        raise NotImplementedError(f"{self.code} sends no refund notifications")

    @abstractmethod
    def acknowledge(self) -> Acknowledgement:
        """The answer that tells the provider "received, stop re-sending"."""

    @abstractmethod
    def reject(self, reason: str) -> Acknowledgement:
        """The answer to a notification we could not accept (a 4xx): re-send it."""

    # -- refunds --------------------------------------------------------------

    @abstractmethod
    def refund(self, request: RefundRequest) -> RefundState:
        """Ask for a refund under `out_refund_no`; the same number never refunds twice."""

    @abstractmethod
    def query_refund(self, reference: RefundReference) -> RefundState:
        """Ask the provider for the refund's state."""

    # -- statements -----------------------------------------------------------

    @property
    def has_statements(self) -> bool:
        return self.statement_window is not None

    def fetch_statement(self, day: date) -> StatementFile:
        """Download (and integrity-check) the provider's bill for bill day `day`.

        Raises NoStatement when the provider has no bill for the day (its
        `reason` says whether one may still come), StatementIntegrityError
        (a GatewayUnavailable) when the file arrived damaged or differs from
        what the provider announced, GatewayUnavailable and GatewayRejected
        as any call, and ValueError for a day that is not over yet at the
        provider. A download link that expired before it was used is
        replaced by a new one here, never reported.
        """
        raise NotImplementedError

    def parse_statement(self, statement: StatementFile) -> Iterator[StatementLine]:
        """Yield the bill's payment and refund lines, in file order, as it is read.

        The bill's own control totals are checked once the last line has
        been read: a caller that stores lines as they come must keep them
        uncommitted until the iterator is exhausted. Raises
        StatementFormatError (StatementTotalsMismatch for the totals).
        """
        raise NotImplementedError

    def statement_columns(self, statement: StatementFile) -> Iterator[Any] | None:
        """The same lines as `parse_statement`, read in bulk as Arrow record batches; None: no bulk reader.

        Columns and types: payments.gateways.statement_columns.SCHEMA. The
        totals are checked after the last batch, as `parse_statement` does.
        A bulk reader takes only its format's plain shape and raises
        StatementFormatError for anything else: the caller then reads the
        bill with `parse_statement`, whose verdict stands.
        """
        return None
