"""Errors of the refunds app (the convention is shop.exceptions.ShopError).

    RefundError
    ├── RefundNotAllowed          not the shopper's order, or nothing paid on it
    ├── InvalidRefundAmount       zero, negative, or above what is refundable
    ├── ReviewNotAllowed          the user may not review refunds
    ├── SelfReviewNotAllowed      the reviewer is the order's shopper or the applicant
    ├── RejectNoteRequired        a rejection or a settlement without its note
    ├── SecondApproverRequired    the same reviewer approving twice
    └── InvalidRefundTransition   a refund status move REFUND_TRANSITIONS forbids
"""
from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from shop.exceptions import InvalidTransition, ShopError
from shop.money import Money


class RefundError(ShopError):
    """Root of the refunds app's errors."""

    user_message = _("The refund could not be processed.")


class RefundNotAllowed(RefundError):
    user_message = _("This order cannot be refunded.")


class InvalidRefundAmount(RefundError):
    user_message = _("The amount is not refundable.")

    @staticmethod
    def left_message(left: Money) -> str | Promise:
        return _("The amount is not refundable: %(left)s is left on this payment.") % {"left": left.format()}


class ReviewNotAllowed(RefundError):
    user_message = _("You are not allowed to review refunds.")


class SelfReviewNotAllowed(RefundError):
    user_message = _("You cannot decide on a refund of your own order, or one you applied for.")


class RejectNoteRequired(RefundError):
    user_message = _("Say why the refund is rejected.")


class SecondApproverRequired(RefundError):
    user_message = _("This refund needs a second approval by another reviewer.")


class InvalidRefundTransition(InvalidTransition, RefundError):
    pass
