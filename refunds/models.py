from datetime import date, timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop.actors import ActorEvent
from shop.money import Money


class RefundStatus(models.TextChoices):
    REQUESTED = "requested", _("Waiting for review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    PROCESSING = "processing", _("Being refunded")
    SUCCEEDED = "succeeded", _("Refunded")
    FAILED = "failed", _("Failed")
    # The gateway took the refund but could not return the money by the
    # original route (WeChat Pay ABNORMAL): staff must act.
    ABNORMAL = "abnormal", _("Needs manual handling")


S = RefundStatus
# The refund lifecycle: from each status, the statuses it may move to.
REFUND_TRANSITIONS: dict[str, frozenset[str]] = {
    S.REQUESTED: frozenset({S.APPROVED, S.REJECTED}),
    S.APPROVED: frozenset({S.PROCESSING}),
    S.PROCESSING: frozenset({S.SUCCEEDED, S.FAILED, S.ABNORMAL}),
    # A failed refund may be retried by staff under the same out_refund_no.
    S.FAILED: frozenset({S.PROCESSING}),
    # Staff settle an abnormal refund after handling it at the provider.
    S.ABNORMAL: frozenset({S.SUCCEEDED, S.FAILED}),
    S.REJECTED: frozenset(),
    S.SUCCEEDED: frozenset(),
}
# Approved refunds on their way to the gateway or there, and those done:
# together they may never exceed the amount paid (RefundBalance.reserved_minor).
IN_FLIGHT_STATUSES = (S.APPROVED, S.PROCESSING, S.ABNORMAL)
RESERVING_STATUSES = (*IN_FLIGHT_STATUSES, S.SUCCEEDED)
# Still open from the shopper's point of view: the order shows "refund pending".
OPEN_STATUSES = (S.REQUESTED, *IN_FLIGHT_STATUSES)
del S

# Refunded money reaches a balance at once and a bank card within about
# this many working days (what the providers tell their users); the order
# page gives the shopper the date it should be there by.
REFUND_ARRIVAL_WORKING_DAYS = 7


class RefundReason(models.TextChoices):
    NOT_RECEIVED = "not_received", _("I did not receive the goods")
    DAMAGED = "damaged", _("The goods arrived damaged")
    NOT_AS_DESCRIBED = "not_as_described", _("Not as described")
    CHANGED_MIND = "changed_mind", _("I changed my mind")
    OTHER = "other", _("Other")
    # Set by the shop, never offered to shoppers.
    DUPLICATE_PAYMENT = "duplicate_payment", _("Duplicate payment")
    PAID_AFTER_CLOSE = "paid_after_close", _("Paid after the order closed")


SHOPPER_REASONS = [
    RefundReason.NOT_RECEIVED,
    RefundReason.DAMAGED,
    RefundReason.NOT_AS_DESCRIBED,
    RefundReason.CHANGED_MIND,
    RefundReason.OTHER,
]


class RefundBalance(models.Model):
    """Per payment: what was paid, what refunds hold, what came back.

    Every refund operation locks this row first. The check constraints make
    the database itself refuse a refund total above the amount paid, whatever
    the code above it does.
    """

    payment = models.OneToOneField(
        "payments.Payment", on_delete=models.PROTECT, related_name="refund_balance", primary_key=True
    )
    paid_minor = models.PositiveBigIntegerField()
    # Approved, processing, abnormal and succeeded refunds (RESERVING_STATUSES).
    reserved_minor = models.PositiveBigIntegerField(default=0)
    refunded_minor = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = _("refund balance")
        verbose_name_plural = _("refund balances")
        constraints = [
            models.CheckConstraint(condition=Q(reserved_minor__lte=F("paid_minor")), name="refunds_within_paid"),
            models.CheckConstraint(
                condition=Q(refunded_minor__lte=F("reserved_minor")), name="refunded_within_reserved"
            ),
        ]

    def __str__(self) -> str:
        return f"payment {self.payment_id}: {self.refunded_minor}/{self.reserved_minor}/{self.paid_minor}"

    @property
    def refundable_minor(self) -> int:
        return self.paid_minor - self.reserved_minor


class Refund(models.Model):
    """One application to give back money of one payment, in full or in part."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="refunds",
                              verbose_name=_("order"))
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, related_name="refunds",
                                verbose_name=_("payment"))
    # Created once and sent on every attempt: the gateway refunds a number
    # at most once, which is what makes retries safe.
    out_refund_no = models.CharField(_("refund number"), max_length=64, unique=True)
    amount_minor = models.PositiveBigIntegerField(_("amount (fen)"))
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    reason = models.CharField(_("reason"), max_length=32, choices=RefundReason.choices)
    reason_text = models.TextField(_("details"), blank=True)
    # The reason as sent to the gateway, fixed when the refund is made, so
    # every retry (from any process, in any language) sends the same text.
    gateway_reason = models.CharField(_("reason sent to the gateway"), max_length=80, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=RefundStatus.choices,
                              default=RefundStatus.REQUESTED)
    # One-time token of the application form: a double submit hits the
    # unique constraint instead of applying twice.
    application_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="+", verbose_name=_("requested by"))
    # Refunds the shop starts itself (duplicate or late payments) skip review.
    automatic = models.BooleanField(_("automatic"), default=False)
    approvals_required = models.PositiveSmallIntegerField(_("approvals needed"), default=1)
    review_note = models.TextField(_("review note"), blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+", verbose_name=_("decided by"))
    reviewed_at = models.DateTimeField(_("decided"), null=True, blank=True)
    gateway_refund_id = models.CharField(_("gateway refund id"), max_length=64, blank=True)
    gateway_status = models.CharField(_("gateway status"), max_length=16, blank=True)
    refunded_at = models.DateTimeField(_("refunded"), null=True, blank=True)
    last_error = models.TextField(_("last gateway error"), blank=True)
    # When the refund was first sent under its current number, to the second;
    # every retry under that number sends the same time (UnionPay knows a
    # refund by orderId + txnTime). A new number starts a new one.
    submitted_at = models.DateTimeField(_("submitted to the gateway"), null=True, blank=True)
    submit_count = models.PositiveIntegerField(_("times sent"), default=0)
    # Polling of refunds the gateway is still processing.
    next_poll_at = models.DateTimeField(_("next asks the gateway"), null=True, blank=True)
    poll_count = models.PositiveIntegerField(_("times asked"), default=0)
    # Polling gave up: staff must look (shown as an alarm in admin).
    gave_up_at = models.DateTimeField(_("polling gave up"), null=True, blank=True)
    created_at = models.DateTimeField(_("applied"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        permissions = [("review_refund", _("Can approve or reject refunds"))]
        constraints = [
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="refund_amount_positive"),
        ]
        indexes = [
            models.Index(fields=["status", "next_poll_at"], name="refund_status_next_poll"),
            # The default ordering: admin's queue reads a page off the index.
            models.Index(fields=["-created_at", "-id"], name="refund_newest"),
        ]

    def __str__(self) -> str:
        return self.out_refund_no

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)

    @property
    def expected_by(self) -> date | None:
        """The day the money should be back on the shopper's account, weekends skipped."""
        if self.refunded_at is None:
            return None
        day, left = timezone.localdate(self.refunded_at), REFUND_ARRIVAL_WORKING_DAYS
        while left:
            day += timedelta(days=1)
            if day.weekday() < 5:
                left -= 1
        return day


class RefundApproval(models.Model):
    """One reviewer's approval; large refunds need two by different people."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="approvals", verbose_name=_("refund"))
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                 verbose_name=_("reviewer"))
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("approved"), auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        verbose_name = _("refund approval")
        verbose_name_plural = _("refund approvals")
        constraints = [
            models.UniqueConstraint(fields=["refund", "reviewer"], name="one_approval_per_reviewer"),
        ]

    def __str__(self) -> str:
        return f"{self.refund_id} approved by {self.reviewer_id}"


class RefundEvent(ActorEvent):
    """Append-only log of every refund change and gateway exchange."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="events", verbose_name=_("refund"))
    from_status = models.CharField(_("from"), max_length=16, choices=RefundStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=16, choices=RefundStatus.choices)
    notification = models.ForeignKey("payments.GatewayNotification", on_delete=models.PROTECT, null=True,
                                     blank=True, related_name="+", verbose_name=_("notification"))
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    class Meta(ActorEvent.Meta):
        verbose_name = _("refund event")
        verbose_name_plural = _("refund events")

    def __str__(self) -> str:
        return f"{self.refund_id}: {self.from_status or '-'} → {self.to_status}"


class InvariantViolation(models.Model):
    """A money invariant found broken by the periodic check; an alarm for staff."""

    kind = models.CharField(_("kind"), max_length=64)
    subject = models.CharField(_("subject"), max_length=100)
    detail = models.TextField(_("detail"))
    first_seen_at = models.DateTimeField(_("first seen"), auto_now_add=True)
    last_seen_at = models.DateTimeField(_("last seen"))
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        verbose_name = _("money invariant violation")
        verbose_name_plural = _("money invariant violations")
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject"], condition=Q(resolved_at__isnull=True),
                                    name="one_open_violation_per_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}"


class RefundEmail(models.Model):
    """That the shopper was emailed about one event of a refund: at most once.

    The email task claims its row before sending (a unique constraint), so a
    second delivery of the same task (the outbox delivers at least once)
    sends nothing; a failed send gives the claim back.
    """

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="emails")
    event = models.CharField(max_length=16)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sent_at", "pk"]
        verbose_name = _("refund email")
        verbose_name_plural = _("refund emails")
        constraints = [models.UniqueConstraint(fields=["refund", "event"], name="one_email_per_refund_event")]

    def __str__(self) -> str:
        return f"{self.refund_id} {self.event}"
