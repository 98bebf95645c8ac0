from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from shop.actors import ActorEvent
from shop.money import Money


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("Awaiting payment")
    PAID = "paid", _("Paid")
    SHIPPED = "shipped", _("Shipped")
    COMPLETED = "completed", _("Completed")
    CLOSED = "closed", _("Closed")
    REFUND_PENDING = "refund_pending", _("Refund pending")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")


S = OrderStatus
# The order lifecycle: from each status, the statuses it may move to. Every
# transition goes through orders.services, which consults this table.
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.CLOSED}),
    S.PAID: frozenset({S.SHIPPED, S.REFUND_PENDING, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.SHIPPED: frozenset({S.COMPLETED, S.REFUND_PENDING, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.COMPLETED: frozenset({S.REFUND_PENDING, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    # A pending refund ends by being rejected or failing (back to where the
    # order was: paid, shipped or completed), or by money coming back in part
    # or in full.
    S.REFUND_PENDING: frozenset({S.PAID, S.SHIPPED, S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.REFUND_PENDING, S.REFUNDED, S.SHIPPED, S.COMPLETED}),
    S.REFUNDED: frozenset(),
    S.CLOSED: frozenset(),
}
del S


# Statuses in which a shopper may apply for a refund.
REFUNDABLE_STATUSES = frozenset({
    OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.COMPLETED,
    OrderStatus.REFUND_PENDING, OrderStatus.PARTIALLY_REFUNDED,
})


class Order(models.Model):
    order_no = models.CharField(_("order number"), max_length=32, unique=True)
    shopper = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("shopper"),
    )
    status = models.CharField(
        _("status"),
        max_length=32,
        choices=OrderStatus.choices,
        default=OrderStatus.PENDING_PAYMENT,
    )
    total_minor = models.PositiveBigIntegerField(_("total (fen)"))
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    # Address snapshot taken at checkout.
    consignee_name = models.CharField(_("consignee"), max_length=100)
    consignee_phone = models.CharField(_("phone"), max_length=32)
    consignee_address = models.TextField(_("address"))
    # One-time token of the checkout form: a double submit hits the unique
    # constraint instead of creating a second order.
    checkout_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(_("payment deadline"))
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        constraints = [
            models.CheckConstraint(condition=Q(total_minor__gt=0), name="order_total_positive"),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="order_status_expiry")]

    def __str__(self) -> str:
        return self.order_no

    def get_absolute_url(self) -> str:
        return reverse("orders:detail", kwargs={"order_no": self.order_no})

    @property
    def total(self) -> Money:
        return Money(self.total_minor, self.currency)

    @property
    def is_payable(self) -> bool:
        return self.status == OrderStatus.PENDING_PAYMENT

    @property
    def accepts_refund_applications(self) -> bool:
        """Paid and not yet refunded in full (the refunds app checks the amounts)."""
        return self.status in REFUNDABLE_STATUSES


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    # The SKU row is kept for stock release; name and price are snapshots so
    # later catalogue edits never change a placed order.
    sku = models.ForeignKey("shop.Sku", on_delete=models.PROTECT, related_name="+")
    sku_code = models.CharField(_("SKU"), max_length=64)
    name = models.CharField(_("item"), max_length=300)
    unit_price_minor = models.PositiveBigIntegerField(_("unit price (fen)"))
    quantity = models.PositiveIntegerField(_("quantity"))

    class Meta:
        ordering = ["pk"]
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="orderline_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} × {self.quantity}"

    @property
    def line_total_minor(self) -> int:
        return self.unit_price_minor * self.quantity


class OrderEvent(ActorEvent):
    """Append-only log of every order status change."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=32, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(max_length=32, choices=OrderStatus.choices)
    # What caused it, e.g. "payment:12", "notification:34", "task:order_close_expired".
    reference = models.CharField(max_length=100, blank=True)

    class Meta(ActorEvent.Meta):
        verbose_name = _("order event")
        verbose_name_plural = _("order events")

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status or '-'} → {self.to_status}"
