"""Who may decide refunds. The services check it; admin hides what a user may not do."""
from __future__ import annotations

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from refunds.exceptions import ReviewNotAllowed, SelfReviewNotAllowed
from refunds.models import RefundStatus

REVIEW_PERMISSION = "refunds.review_refund"


def may_review(user: Any) -> bool:
    return bool(user and user.is_active and user.is_staff and user.has_perm(REVIEW_PERMISSION))


def require_reviewer(user: Any) -> None:
    """Raise ReviewNotAllowed unless `user` is active staff with the review permission."""
    if not may_review(user):
        raise ReviewNotAllowed(f"user {getattr(user, 'pk', None)} may not review refunds")


def approval_blocker(user: Any, *, shopper_id: int | None, applicant_id: int | None, status: str,
                     approved_by_user: bool) -> str | Promise | None:
    """Why `user` is not offered Approve on a refund, or None when they are.

    What admin shows before anyone presses a button; the services check the
    same rules again (require_reviewer, require_independent_reviewer).
    """
    if not may_review(user):
        return ReviewNotAllowed.user_message
    if user.pk in (shopper_id, applicant_id):
        return SelfReviewNotAllowed.user_message
    if status != RefundStatus.REQUESTED:
        return _("It is not waiting for review.")
    if approved_by_user:
        return _("You approved it already: it is waiting for a second reviewer.")
    return None


def require_independent_reviewer(user: Any, *, shopper_id: int | None, applicant_id: int | None,
                                 reference: str) -> None:
    """Segregation of duties: nobody moves money of their own order, or of a refund they applied for.

    Holds for every approval (so above the threshold both approvers differ
    from the applicant, as well as from each other), a retry and a
    settlement. Raises SelfReviewNotAllowed.
    """
    if user.pk is not None and user.pk in (shopper_id, applicant_id):
        raise SelfReviewNotAllowed(f"{reference}: user {user.pk} is the shopper or the applicant")
