"""Why a trade or refund operation was refused; providers map these to their codes."""


class SandboxError(Exception):
    pass


class TradeConflict(SandboxError):
    """The same out_trade_no came again with different content (amount)."""


class TradeAlreadyPaid(SandboxError):
    pass


class TradeClosed(SandboxError):
    """Closed, failed, voided or expired: it can no longer be paid."""


class TradeExpired(TradeClosed):
    """Past its deadline but still unpaid on the wire (WeChat Pay: NOTPAY
    until the merchant closes it): it can no longer be paid."""


class TradeNotRefundable(SandboxError):
    """Not paid, or already refunded in full."""


class RefundConflict(SandboxError):
    """The same refund number came again with a different amount."""


class RefundExceedsRefundable(SandboxError):
    pass


class InvalidTransition(SandboxError):
    pass
