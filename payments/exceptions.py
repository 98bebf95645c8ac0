"""Errors of the payments app and of the gateway adapters.

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
    ├── InvalidNotification         bad signature, stale, undecryptable, malformed,
    │                               or not ours (app id, merchant): 4xx, logged
    ├── StatementFormatError        a bill that does not parse as its provider
    │   │                           documents it (also a ValueError)
    │   └── StatementTotalsMismatch its rows disagree with its own control totals
    ├── AmountMismatch              a verified result whose amount differs from ours
    └── InvalidTransition           a payment status move the table forbids
"""


class PaymentError(Exception):
    pass


class GatewayError(PaymentError):
    pass


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
    pass


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


class AmountMismatch(PaymentError):
    pass


class InvalidTransition(PaymentError):
    def __init__(self, reference: str, from_status: str, to_status: str) -> None:
        super().__init__(f"{reference}: {from_status} → {to_status} is not allowed")
        self.from_status = from_status
        self.to_status = to_status
