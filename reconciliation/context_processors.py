from typing import Any

from django.http import HttpRequest

from reconciliation.permissions import can_view


def reconciliation_alarms(request: HttpRequest) -> dict[str, Any]:
    """Days that could not be reconciled (or were reopened): a banner on admin and finance pages."""
    if not request.path.startswith(("/admin/", "/finance/")) or not can_view(getattr(request, "user", None)):
        return {}
    from reconciliation.selectors import reconciliation_alarms as alarms

    found = alarms()
    return {"reconciliation_alarms": found if found else None}
