"""Errors of the payments app and of the gateway adapters.

The convention (detail in `str()`, the sentence a person sees in
`user_message`) is shop.exceptions.ShopError's.

    PaymentError
    ├── GatewayError
    │   ├── GatewayUnavailable      timeout, connection error, 5xx, "system error":
    │   │   │                       the outcome is unknown; retry the same request
    │   │   │                       (same out_trade_no / out_refund_no) or query
    │   │   ├── ResponseNotVerified the answer's signature did not verify: never
    │   │   │                       use its content; treat like an unknown outcome
    │   │   └── StatementIntegrityError  a downloaded bill is damaged or its hash
    │   │                           differs from the announced one: download again
    │   ├── GatewayRejected         the provider said no (code, sub_code, message);
    │   │                           final for this request
    │   └── GatewayNotConfigured    settings incomplete; the gateway is not offered
    ├── NoStatement                 the provider has no bill for that day (yet):
    │                               `reason` says whether to ask again later
    ├── InvalidNotification         bad signature, stale, undecryptable, malformed,
    │                               or not ours (app id, merchant): 4xx, logged
    ├── StatementFormatError        a bill that does not parse as its provider
    │   │                           documents it (also a ValueError)
    │   └── StatementTotalsMismatch its rows disagree with its own control totals
    ├── NotificationRefused         a verified notification about nothing of ours
    │                               (unknown trade or refund, another amount): 4xx
    ├── AmountMismatch              a verified result whose amount differs from ours
    ├── UnknownTrade                a verified result for a trade we never started
    ├── OrderNotPayable             the order is paid, closed or past its deadline
    ├── UnsupportedMethod           the gateway cannot pay this way
    └── InvalidPaymentTransition    a payment status move PAYMENT_TRANSITIONS forbids
"""
from __future__ import annotations

import enum
from typing import Any

from django.utils.translation import gettext_lazy as _

from shop.exceptions import InvalidTransition, ShopError


class PaymentError(ShopError):
    """Root of the payments app's errors."""

    user_message = _("The payment could not be processed.")


class GatewayError(PaymentError):
    user_message = _("The payment service could not be reached. Please try again or choose another method.")


class GatewayUnavailable(GatewayError):
    pass


class ResponseNotVerified(GatewayUnavailable):
    pass


class StatementIntegrityError(GatewayUnavailable):
    """The downloaded bill is damaged or its hash differs from the announced one."""


class GatewayRejected(GatewayError):
    def __init__(self, message: str, *, code: str = "", sub_code: str = "") -> None:
        super().__init__(f"{code} {sub_code}: {message}".strip())
        self.code = code
        self.sub_code = sub_code
        self.gateway_message = message


class GatewayNotConfigured(GatewayError):
    user_message = _("This payment method is not available right now.")


class NoStatementReason(enum.StrEnum):
    """Why a provider handed out no bill, in words every provider's code maps to."""

    NOT_YET = "not_yet"  # still being made: ask again later (WeChat Pay STATEMENT_CREATING)
    NONE = "none"  # there is none for that day, e.g. no trades (WeChat Pay NO_STATEMENT_EXIST)
    EITHER = "either"  # the provider does not say which (Alipay isp.bill_not_exist)


class NoStatement(PaymentError):
    """The normalised "no bill for that day" answer of `Gateway.fetch_statement`.

    Not a transport failure: the provider answered. Each adapter maps its own
    error code to a `NoStatementReason`, so callers never read provider codes.
    """

    def __init__(self, detail: str, *, reason: NoStatementReason) -> None:
        super().__init__(detail)
        self.reason = reason


class InvalidNotification(PaymentError):
    """Raised by adapters; `reason` is logged and stored, never shown to the sender."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StatementFormatError(PaymentError, ValueError):
    """A bill that does not parse as its provider documents it. The same root
    for every adapter's parser, so reconciliation handles one error."""


class StatementTotalsMismatch(StatementFormatError):
    """A bill whose rows disagree with its own control totals."""


class NotificationRefused(PaymentError):
    """Raised by notification handlers; `alarming` when money disagrees (logged as an error)."""

    def __init__(self, detail: str, *, out_trade_no: str = "", alarming: bool = False) -> None:
        super().__init__(detail)
        self.out_trade_no = out_trade_no
        self.alarming = alarming


class AmountMismatch(PaymentError):
    pass


class UnknownTrade(PaymentError):
    pass


class OrderNotPayable(PaymentError):
    user_message = _("This order can no longer be paid.")

    def __init__(self, order: Any) -> None:
        super().__init__(f"order {order.order_no} is {order.status}, not payable")
        self.order = order


class UnsupportedMethod(PaymentError):
    user_message = _("This payment method is not available right now.")


class InvalidPaymentTransition(InvalidTransition, PaymentError):
    pass
