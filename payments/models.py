from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from payments.gateways.base import PayMethod, TradeStatus
from shop.actors import ActorEvent
from shop.money import Money


class PaymentStatus(models.TextChoices):
    CREATED = "created", _("Created")
    PENDING = "pending", _("Waiting for the shopper")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CLOSED = "closed", _("Closed")


S = PaymentStatus
# The payment-attempt lifecycle; payments.services consults this table for
# every move.
PAYMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    S.CREATED: frozenset({S.PENDING, S.SUCCEEDED, S.FAILED, S.CLOSED}),
    S.PENDING: frozenset({S.SUCCEEDED, S.FAILED, S.CLOSED}),
    # Money that arrives after a close or a failure is real: the attempt
    # succeeds, and the order's state decides whether it must be refunded.
    S.FAILED: frozenset({S.SUCCEEDED}),
    S.CLOSED: frozenset({S.SUCCEEDED}),
    S.SUCCEEDED: frozenset(),
}
del S


# How the shopper paid, as staff read it in admin.
METHOD_CHOICES = [
    (PayMethod.PAGE.value, _("Website")),
    (PayMethod.WAP.value, _("Mobile page or app")),
    (PayMethod.QR.value, _("QR code")),
]
# What the gateway said the last time it was asked.
GATEWAY_STATUS_CHOICES = [
    (TradeStatus.NOT_FOUND.value, _("No such trade")),
    (TradeStatus.PENDING.value, _("Not paid yet")),
    (TradeStatus.SUCCEEDED.value, _("Paid")),
    (TradeStatus.CLOSED.value, _("Closed")),
    (TradeStatus.FAILED.value, _("Failed")),
]


class RefundRequired(models.TextChoices):
    """Why a succeeded payment must be given back without a shopper asking."""

    NO = "", _("No")
    DUPLICATE = "duplicate_payment", _("Duplicate payment: the order was already paid")
    LATE = "paid_after_close", _("Paid after the order closed")


class Payment(models.Model):
    """One attempt to pay one order through one gateway."""

    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="payments", verbose_name=_("order")
    )
    attempt_no = models.PositiveSmallIntegerField(_("attempt"))
    gateway = models.CharField(_("gateway"), max_length=16)
    method = models.CharField(_("method"), max_length=8, choices=METHOD_CHOICES)
    # Our merchant trade number for this attempt: `<order_no>P<attempt>`,
    # letters and digits only, so it fits every provider's rules.
    out_trade_no = models.CharField(_("merchant trade number"), max_length=64, unique=True)
    amount_minor = models.PositiveBigIntegerField(_("amount (fen)"))
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    status = models.CharField(
        _("status"), max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.CREATED
    )
    gateway_trade_no = models.CharField(_("gateway trade number"), max_length=64, blank=True)
    # What the gateway said the last time we asked (not_found, pending, ...).
    gateway_status = models.CharField(
        _("gateway status"), max_length=16, blank=True, choices=GATEWAY_STATUS_CHOICES
    )
    # The provider refuses payment after this (sent as time_expire).
    expires_at = models.DateTimeField(_("payable until"))
    # When the attempt was requested, to the second, fixed before the first
    # gateway call: a provider that knows a trade by number and time
    # (UnionPay orderId + txnTime) is always asked with this same time.
    requested_at = models.DateTimeField(_("request time"))
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)
    # The QR code content of a QR attempt, so the page can be shown again.
    qr_content = models.TextField(_("QR code content"), blank=True)
    # When the shopper's browser came back from the gateway.
    returned_at = models.DateTimeField(_("shopper came back"), null=True, blank=True)
    # Janitor bookkeeping: when to ask the gateway next, and how often we did.
    last_queried_at = models.DateTimeField(_("last asked the gateway"), null=True, blank=True)
    next_query_at = models.DateTimeField(_("next asks the gateway"), null=True, blank=True)
    query_count = models.PositiveIntegerField(_("times asked"), default=0)
    refund_required = models.CharField(
        _("refund required"), max_length=32, choices=RefundRequired.choices, blank=True, default=""
    )
    confirmation_sent_at = models.DateTimeField(_("confirmation emailed"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        constraints = [
            models.UniqueConstraint(fields=["order", "attempt_no"], name="payment_attempt_unique"),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="payment_amount_positive"),
            # At most one succeeded payment counts for an order; any other
            # must carry the reason it is to be refunded.
            models.UniqueConstraint(
                fields=["order"],
                condition=Q(status="succeeded", refund_required=""),
                name="one_accepted_payment_per_order",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_query_at"], name="payment_status_next_query"),
            # Reconciliation reads a gateway's successes of one bill day.
            models.Index(fields=["gateway", "paid_at"], name="payment_gateway_paid_at"),
            # The default ordering: admin's list reads a page off the index.
            models.Index(fields=["-created_at", "-id"], name="payment_newest"),
        ]

    def __str__(self) -> str:
        return self.out_trade_no

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)

    @property
    def is_open(self) -> bool:
        return self.status in (PaymentStatus.CREATED, PaymentStatus.PENDING)


class PaymentEvent(ActorEvent):
    """Append-only log of every payment status change and gateway exchange."""

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="events", verbose_name=_("payment"))
    from_status = models.CharField(_("from"), max_length=16, choices=PaymentStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=16, choices=PaymentStatus.choices)
    notification = models.ForeignKey(
        "payments.GatewayNotification", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("notification"),
    )
    # The gateway's answer that caused the change (a query result), if any.
    detail = models.JSONField(_("gateway's answer"), default=dict, blank=True)

    class Meta(ActorEvent.Meta):
        verbose_name = _("payment event")
        verbose_name_plural = _("payment events")

    def __str__(self) -> str:
        return f"{self.payment_id}: {self.from_status or '-'} → {self.to_status}"


class NotificationKind(models.TextChoices):
    PAYMENT = "payment", _("Payment")
    REFUND = "refund", _("Refund")


class NotificationOutcome(models.TextChoices):
    RECEIVED = "received", _("Received, not processed yet")
    APPLIED = "applied", _("Applied")
    UNCHANGED = "unchanged", _("Verified; nothing to change")
    DUPLICATE = "duplicate", _("Duplicate of an earlier notification")
    REJECTED = "rejected", _("Rejected")
    FAILED = "failed", _("Failed while applying")


class GatewayNotification(models.Model):
    """The inbox: every notification a gateway sent us, stored raw first."""

    gateway = models.CharField(_("gateway"), max_length=16)
    kind = models.CharField(_("kind"), max_length=16, choices=NotificationKind.choices)
    body = models.BinaryField(_("raw body"))
    headers = models.JSONField(_("headers"), default=dict)
    remote_addr = models.GenericIPAddressField(_("sender address"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"))
    # Set once the signature and addressee check out; None until processed.
    verified = models.BooleanField(_("verified"), null=True)
    # The adapter's key for "the same notification" (e.g. Alipay notify_id),
    # claimed only by a verified notification that is being applied: a forged
    # copy can never take the key away from the genuine one.
    dedupe_key = models.CharField(_("dedupe key"), max_length=128, null=True, blank=True)  # noqa: DJ001 (NULLs never collide)
    out_trade_no = models.CharField(_("merchant trade number"), max_length=64, blank=True, db_index=True)
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="notifications",
        verbose_name=_("payment"),
    )
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=NotificationOutcome.choices, default=NotificationOutcome.RECEIVED
    )
    outcome_detail = models.TextField(_("detail"), blank=True)
    duplicate_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                     verbose_name=_("duplicate of"))
    process_count = models.PositiveIntegerField(_("times processed"), default=0)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        verbose_name = _("gateway notification")
        verbose_name_plural = _("gateway notifications")
        constraints = [
            models.UniqueConstraint(fields=["gateway", "dedupe_key"], name="notification_dedupe_unique"),
        ]
        # The default ordering: admin's inbox reads a page off the index.
        indexes = [models.Index(fields=["-received_at", "-id"], name="notification_newest")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.kind} #{self.pk} {self.outcome}"

    @property
    def body_text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")
