"""Who may see the finance pages and who may decide. The services check; pages hide what a user may not do."""
from __future__ import annotations

from typing import Any

from reconciliation.exceptions import ReconciliationNotAllowed

VIEW_PERMISSION = "reconciliation.view_reports"
DECIDE_PERMISSION = "reconciliation.decide_discrepancies"


def can_view(user: Any) -> bool:
    return bool(user and user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))


def can_decide(user: Any) -> bool:
    return can_view(user) and bool(user.has_perm(DECIDE_PERMISSION))


def require_finance(user: Any) -> None:
    """Raise ReconciliationNotAllowed unless `user` is active staff who may decide discrepancies."""
    if not can_decide(user):
        raise ReconciliationNotAllowed(f"user {getattr(user, 'pk', None)} may not decide reconciliation")
