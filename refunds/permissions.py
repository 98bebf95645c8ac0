"""Who may decide refunds. The services check it; admin hides what a user may not do."""
from __future__ import annotations

from typing import Any

from refunds.exceptions import ReviewNotAllowed, SelfReviewNotAllowed

REVIEW_PERMISSION = "refunds.review_refund"


def require_reviewer(user: Any) -> None:
    """Raise ReviewNotAllowed unless `user` is active staff with the review permission."""
    if not (user and user.is_active and user.is_staff and user.has_perm(REVIEW_PERMISSION)):
        raise ReviewNotAllowed(f"user {getattr(user, 'pk', None)} may not review refunds")


def require_independent_reviewer(user: Any, *, shopper_id: int | None, applicant_id: int | None,
                                 reference: str) -> None:
    """Segregation of duties: nobody moves money of their own order, or of a refund they applied for.

    Holds for every approval (so above the threshold both approvers differ
    from the applicant, as well as from each other), a retry and a
    settlement. Raises SelfReviewNotAllowed.
    """
    if user.pk is not None and user.pk in (shopper_id, applicant_id):
        raise SelfReviewNotAllowed(f"{reference}: user {user.pk} is the shopper or the applicant")
