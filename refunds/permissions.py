"""Who may decide refunds. The services check it; admin hides what a user may not do."""
from __future__ import annotations

from typing import Any

from refunds.exceptions import ReviewNotAllowed

REVIEW_PERMISSION = "refunds.review_refund"


def require_reviewer(user: Any) -> None:
    """Raise ReviewNotAllowed unless `user` is active staff with the review permission."""
    if not (user and user.is_active and user.is_staff and user.has_perm(REVIEW_PERMISSION)):
        raise ReviewNotAllowed(f"user {getattr(user, 'pk', None)} may not review refunds")
