"""The sandbox's provider-neutral records: trades, refunds, notifications, faults.

A provider package (sandbox/alipay/, sandbox/wechatpay/, sandbox/unionpay/) decides
what a record means on its wire. Statuses change only in sandbox/services.py
(trades, refunds) and sandbox/notifications.py (deliveries). Trade times are
on the sandbox clock (`runtime.provider_now`, which tests may shift); log
times are real.
"""
from django.db import models


class Trade(models.Model):
    class Status(models.TextChoices):
        # The merchant asked (page pay request, precreate) but the shopper has
        # not opened or scanned it: the provider has no such trade yet.
        ANNOUNCED = "announced"
        # Opened or scanned: the trade exists and waits for the buyer.
        PENDING = "pending"
        PAID = "paid"
        # The buyer's payment failed: closed unpaid.
        FAILED = "failed"
        # Closed unpaid by the merchant's close call or by expiry.
        CLOSED = "closed"
        # Closed by the merchant before it existed: still unknown to the
        # provider, and its number can never be paid.
        VOIDED = "voided"

    class PayMethod(models.TextChoices):
        PAGE = "page"
        WAP = "wap"
        QR = "qr"

    provider = models.CharField(max_length=16)
    out_trade_no = models.CharField(max_length=64)
    # The provider's own trade number, given when the trade comes to exist.
    trade_no = models.CharField(max_length=64, null=True, blank=True, unique=True)
    pay_method = models.CharField(max_length=8, choices=PayMethod.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ANNOUNCED)
    amount_minor = models.PositiveBigIntegerField()
    refunded_minor = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="CNY")
    subject = models.CharField(max_length=256, blank=True)
    body = models.TextField(blank=True)
    notify_url = models.CharField(max_length=1024, blank=True)
    return_url = models.CharField(max_length=1024, blank=True)
    quit_url = models.CharField(max_length=1024, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The capability in the cashier and scan page URLs.
    token = models.CharField(max_length=32, unique=True)
    # Provider-specific request details echoed later (app id, method, ...).
    wire = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "out_trade_no"], name="sandbox_trade_unique_out_trade_no"),
            models.CheckConstraint(
                condition=models.Q(refunded_minor__lte=models.F("amount_minor")),
                name="sandbox_trade_refunded_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.out_trade_no} ({self.status})"

    @property
    def exists_at_provider(self) -> bool:
        return self.status not in (self.Status.ANNOUNCED, self.Status.VOIDED)

    @property
    def fully_refunded(self) -> bool:
        return self.status == self.Status.PAID and self.refunded_minor == self.amount_minor


# The one place to read a trade's lifecycle; services refuse anything else.
TRADE_TRANSITIONS: dict[str, frozenset[str]] = {
    Trade.Status.ANNOUNCED: frozenset(
        {Trade.Status.PENDING, Trade.Status.PAID, Trade.Status.FAILED, Trade.Status.CLOSED, Trade.Status.VOIDED}
    ),
    Trade.Status.PENDING: frozenset({Trade.Status.PAID, Trade.Status.FAILED, Trade.Status.CLOSED}),
    Trade.Status.PAID: frozenset(),
    Trade.Status.FAILED: frozenset(),
    Trade.Status.CLOSED: frozenset(),
    Trade.Status.VOIDED: frozenset(),
}


class Refund(models.Model):
    class Status(models.TextChoices):
        # Accepted but not settled: refund queries say "nothing yet" until
        # `pending_queries` runs out (a fault rule keeps it here).
        PROCESSING = "processing"
        SUCCEEDED = "succeeded"
        # WeChat Pay's other ends (set through the control API): the money
        # could not go back by the original route (it stays reserved), or
        # the refund failed for good (the amount is refundable again).
        ABNORMAL = "abnormal"
        CLOSED = "closed"

    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, related_name="refunds")
    # The merchant's refund number (Alipay out_request_no).
    out_refund_no = models.CharField(max_length=64)
    refund_id = models.CharField(max_length=64, unique=True)
    amount_minor = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=256, blank=True)
    # Where this refund's own notification goes (WeChat Pay, UnionPay); blank: none.
    notify_url = models.CharField(max_length=1024, blank=True)
    # Provider-specific request details (UnionPay: the refund's txnTime).
    wire = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    # How often the merchant asked for this refund (replays included).
    requests = models.PositiveIntegerField(default=1)
    pending_queries = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    succeeded_at = models.DateTimeField(null=True, blank=True)
    # When it reached SUCCEEDED, ABNORMAL or CLOSED.
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["trade", "out_refund_no"], name="sandbox_refund_unique_per_trade"),
            models.CheckConstraint(condition=models.Q(amount_minor__gt=0), name="sandbox_refund_positive"),
        ]

    def __str__(self) -> str:
        return f"refund {self.out_refund_no} of {self.trade_id} ({self.status})"


class FaultRule(models.Model):
    """Something the sandbox does wrong on purpose: see sandbox/faults.py."""

    target = models.CharField(max_length=64)
    mode = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    # Blank: any trade.
    out_trade_no = models.CharField(max_length=64, blank=True)
    remaining = models.PositiveIntegerField(default=1)
    applied = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.target} {self.mode}"


class Notification(models.Model):
    class Kind(models.TextChoices):
        PAYMENT = "payment"
        REFUND = "refund"

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"  # waits for next_attempt_at
        HELD = "held"  # kept back by a reorder fault until its group is complete
        DELIVERED = "delivered"  # acknowledged
        GAVE_UP = "gave_up"  # every attempt of the schedule went unacknowledged
        DROPPED = "dropped"  # never sent, by a drop fault

    provider = models.CharField(max_length=16)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, related_name="notifications")
    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications")
    url = models.CharField(max_length=1024)
    # Constant across re-sends (Alipay notify_id).
    notification_id = models.CharField(max_length=64, unique=True)
    # The provider's message fields, unsigned; rendered afresh for each send.
    fields = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The first delivery sends this many identical copies at once.
    copies = models.PositiveSmallIntegerField(default=1)
    # Forged variants sent (once) before the first real delivery.
    forgeries = models.JSONField(default=list, blank=True)
    held_by = models.ForeignKey(
        FaultRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="held_notifications"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="sandbox_notification_due")]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind} notification {self.notification_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP POST of a notification (or the record that it was dropped)."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    # 1 for the first delivery; forged and duplicate copies share its number.
    attempt = models.PositiveIntegerField()
    # "real", "duplicate", "dropped" or a forgery variant name.
    variant = models.CharField(max_length=32, default="real")
    sent_at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    acknowledged = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"attempt {self.attempt} ({self.variant}) of notification {self.notification_id}"


class BillLink(models.Model):
    """A bill download URL handed out; it expires like the provider's."""

    provider = models.CharField(max_length=16)
    token = models.CharField(max_length=32, unique=True)
    bill_type = models.CharField(max_length=16)
    bill_date = models.DateField()
    # The file as built when the link was handed out (WeChat Pay announces
    # its hash first, so the download must serve exactly these bytes);
    # null: built on download (Alipay).
    content = models.BinaryField(null=True, blank=True)
    # "GZIP" or blank: how `content` is sent.
    compression = models.CharField(max_length=8, blank=True)
    # A `<provider>.bill` fault's damage to the file served: "truncate"
    # (cut in half) or "wrong_encoding"; blank: served as built.
    damage = models.CharField(max_length=16, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.provider} bill {self.bill_date} link"
