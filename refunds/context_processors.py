from django.db.models import Q

from refunds.models import InvariantViolation, Refund, RefundStatus
from refunds.selectors import refund_list_decidable_by
from refunds.services.stalled import stalled_q
from shop.models import OutboxMessage


def money_alarms(request):
    """Alarms shown on every admin page to staff (cheap counts)."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated and user.is_staff and request.path.startswith("/admin/")):
        return {}
    alarms = {
        "violations": InvariantViolation.objects.filter(resolved_at__isnull=True).count(),
        "attention": Refund.objects.filter(
            Q(status=RefundStatus.ABNORMAL) | Q(gave_up_at__isnull=False) | stalled_q()).count(),
        # Only what this reviewer can decide: not their own orders or
        # applications, not those waiting for someone else's second approval.
        "to_review": refund_list_decidable_by(user).count(),
        # Follow-up tasks (refund submissions, emails...) the outbox gave up on.
        "outbox_given_up": OutboxMessage.objects.filter(failed_at__isnull=False, completed_at__isnull=True).count()
        if user.has_perm("shop.view_outboxmessage") else 0,
    }
    return {"money_alarms": alarms if any(alarms.values()) else None}
