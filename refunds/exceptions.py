from django.utils.translation import gettext_lazy as _


class RefundError(Exception):
    """Root of the refunds app's errors. `user_message` is safe to show."""

    user_message = _("The refund could not be processed.")

    def __init__(self, message=None) -> None:
        super().__init__(str(message or self.user_message))
        if message is not None:
            self.user_message = message


class RefundNotAllowed(RefundError):
    user_message = _("This order cannot be refunded.")


class InvalidRefundAmount(RefundError):
    user_message = _("The amount is not refundable.")


class ReviewNotAllowed(RefundError):
    user_message = _("You are not allowed to review refunds.")


class RejectNoteRequired(RefundError):
    user_message = _("Say why the refund is rejected.")


class SecondApproverRequired(RefundError):
    user_message = _("This refund needs a second approval by another reviewer.")


class InvalidTransition(RefundError):
    def __init__(self, out_refund_no: str, from_status: str, to_status: str) -> None:
        super().__init__(f"{out_refund_no}: {from_status} → {to_status} is not allowed")
        self.from_status = from_status
        self.to_status = to_status
