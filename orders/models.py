from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from shop.actors import ActorEvent
from shop.money import Money

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


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


class Carrier(models.TextChoices):
    """The couriers an order ships with; the shopper sees the name with the tracking number."""

    SF = "sf", _("SF Express")
    JD = "jd", _("JD Logistics")
    EMS = "ems", _("China Post EMS")
    ZTO = "zto", _("ZTO Express")
    YTO = "yto", _("YTO Express")
    STO = "sto", _("STO Express")
    YUNDA = "yunda", _("Yunda Express")
    OTHER = "other", _("Another courier")


# Why an order moved, when the move itself does not say: a pending refund
# ends by being rejected, or by failing, and the order goes back to where it
# was; its history tells the shopper which (OrderEvent.reason).
REASON_REFUND_REJECTED = "refund rejected"
REASON_REFUND_FAILED = "refund failed"
REASON_RECEIPT_CONFIRMED = "receipt confirmed"
REASON_AUTO_COMPLETED = "completed automatically"
REASON_PAYMENT_TIMEOUT = "payment timeout"

# Statuses from which staff ship an order (a pending refund is decided first).
SHIPPABLE_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED})

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
    # Address snapshot taken at checkout: the parts (orders placed since
    # checkout asked for them), and the whole address on one line, which is
    # all an older order has.
    consignee_name = models.CharField(_("consignee"), max_length=100)
    consignee_phone = models.CharField(_("phone"), max_length=32)
    consignee_address = models.TextField(_("address"))
    address_province = models.CharField(_("province"), max_length=50, blank=True)
    address_city = models.CharField(_("city"), max_length=50, blank=True)
    address_district = models.CharField(_("district"), max_length=50, blank=True)
    address_street = models.CharField(_("street address"), max_length=200, blank=True)
    address_postal_code = models.CharField(_("postal code"), max_length=12, blank=True)
    # The language the shopper used at checkout: their emails speak it.
    language = models.CharField(_("language"), max_length=16, blank=True)
    shipping_carrier = models.CharField(_("carrier"), max_length=16, choices=Carrier.choices, blank=True)
    tracking_number = models.CharField(_("tracking number"), max_length=64, blank=True)
    # One-time token of the checkout form: a double submit hits the unique
    # constraint instead of creating a second order.
    checkout_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    expires_at = models.DateTimeField(_("payment deadline"))
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    shipped_at = models.DateTimeField(_("shipped"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        permissions = [("ship_order", _("Can mark orders shipped and completed"))]
        constraints = [
            models.CheckConstraint(condition=Q(total_minor__gt=0), name="order_total_positive"),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="order_status_expiry"),
            # The sweep that completes orders shipped long enough ago.
            models.Index(fields=["status", "shipped_at"], name="order_status_shipped"),
            # The default ordering, for admin's list and for each shopper's
            # "my orders": a page is read off the index, never sorted.
            models.Index(fields=["-created_at", "-id"], name="order_newest"),
            models.Index(fields=["shopper", "-created_at", "-id"], name="order_shopper_newest"),
        ]

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
    def delivery_address(self) -> str:
        """The address on one line: from its parts, or as an older order kept it."""
        if not self.address_street:
            return self.consignee_address
        parts = (self.address_province, self.address_city, self.address_district, self.address_street,
                 self.address_postal_code)
        return " ".join(part for part in parts if part)

    @property
    def region(self) -> str:
        """Province, city and district of a structured address ("" for an older order)."""
        return " ".join(part for part in (self.address_province, self.address_city, self.address_district) if part)

    @property
    def accepts_refund_applications(self) -> bool:
        """Paid and not yet refunded in full (the refunds app checks the amounts)."""
        return self.status in REFUNDABLE_STATUSES


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", verbose_name=_("order"))
    # The SKU row is kept for stock release; name and price are snapshots so
    # later catalogue edits never change a placed order.
    sku = models.ForeignKey("shop.Sku", on_delete=models.PROTECT, related_name="+", verbose_name=_("SKU"))
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

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events", verbose_name=_("order"))
    from_status = models.CharField(_("from"), max_length=32, choices=OrderStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=32, choices=OrderStatus.choices)
    # What caused it, e.g. "payment:12", "notification:34", "task:order_close_expired".
    reference = models.CharField(_("caused by"), max_length=100, blank=True)

    class Meta(ActorEvent.Meta):
        verbose_name = _("order event")
        verbose_name_plural = _("order events")

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status or '-'} → {self.to_status}"

    @property
    def description(self) -> StrOrPromise:
        """What the shopper's history says of this move."""
        status = OrderStatus
        if not self.from_status:
            return _("Order placed")
        if self.from_status == status.REFUND_PENDING and self.reason == REASON_REFUND_REJECTED:
            return _("Refund rejected")
        if self.from_status == status.REFUND_PENDING and self.reason == REASON_REFUND_FAILED:
            return _("Refund could not be made")
        if self.to_status == status.CLOSED and self.reason == REASON_PAYMENT_TIMEOUT:
            return _("Closed: not paid in time")
        if self.to_status == status.REFUND_PENDING:
            return _("Refund applied for")
        if self.to_status == status.COMPLETED and self.reason == REASON_RECEIPT_CONFIRMED:
            return _("Receipt confirmed")
        if self.to_status == status.COMPLETED and self.reason == REASON_AUTO_COMPLETED:
            return _("Completed automatically")
        return self.get_to_status_display()
