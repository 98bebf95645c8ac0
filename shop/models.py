from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop.money import Money


class Product(models.Model):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("on sale"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name = _("product")
        verbose_name_plural = _("products")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("shop:product", kwargs={"slug": self.slug})


class Sku(models.Model):
    """One purchasable variant of a product, with its own price and stock."""

    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="skus", verbose_name=_("product")
    )
    code = models.CharField(_("SKU"), max_length=64, unique=True)
    name = models.CharField(_("variant"), max_length=100, blank=True)
    price_minor = models.PositiveBigIntegerField(_("price (fen)"))
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    # Units that can still be sold: checkout reserves, closing an unpaid
    # order releases.
    stock = models.PositiveIntegerField(_("stock"), default=0)
    is_active = models.BooleanField(_("on sale"), default=True)

    class Meta:
        ordering = ["product__name", "code"]
        verbose_name = _("SKU")
        verbose_name_plural = _("SKUs")
        constraints = [
            models.CheckConstraint(condition=Q(price_minor__gt=0), name="sku_price_positive"),
            models.CheckConstraint(condition=Q(stock__gte=0), name="sku_stock_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.product.name} {self.name}".strip() + f" ({self.code})"

    @property
    def display_name(self) -> str:
        return f"{self.product.name} · {self.name}" if self.name else self.product.name

    @property
    def price(self) -> Money:
        return Money(self.price_minor, self.currency)


class OutboxMessage(models.Model):
    """A follow-up task written in the same transaction as the change that needs it.

    The transactional outbox (shop/outbox.py): the row commits with the state
    change, the relay hands it to Celery after the commit, and the worker
    records when the task finished. Until then the periodic relay delivers
    it again once `due_at` has passed, so a broker or worker outage delays
    the work and never loses it. Every task it names is idempotent.
    """

    task = models.CharField(_("task"), max_length=200)
    args = models.JSONField(_("arguments"), default=list, blank=True)
    kwargs = models.JSONField(_("keyword arguments"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    # When the periodic relay should deliver it (again): the lease after a
    # delivery, a retry's countdown plus the lease while a worker retries.
    due_at = models.DateTimeField(_("due"))
    deliveries = models.PositiveIntegerField(_("deliveries"), default=0)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    # Given up after OUTBOX_MAX_DELIVERIES: an alarm for staff.
    failed_at = models.DateTimeField(_("given up"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("outbox message")
        verbose_name_plural = _("outbox messages")
        indexes = [
            models.Index(
                fields=["due_at"],
                condition=Q(completed_at__isnull=True, failed_at__isnull=True),
                name="outbox_pending_due",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.task}{tuple(self.args)}"


class WorkerHeartbeat(models.Model):
    """The last sign of life of each Celery worker, shown by /healthz.

    Written every WORKER_HEARTBEAT_SECONDS by a thread of the worker itself
    (config/celery_app.py): a worker that died stops writing and shows as
    stale; one whose consumer is reconnecting to its broker says so.
    """

    hostname = models.CharField(_("host name"), max_length=200, unique=True)
    pid = models.PositiveIntegerField(_("process id"))
    started_at = models.DateTimeField(_("started"))
    seen_at = models.DateTimeField(_("last seen"))
    # Whether its consumer was taking tasks at that beat (not reconnecting).
    consuming = models.BooleanField(_("taking tasks"), default=True)

    class Meta:
        ordering = ["-seen_at"]
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")

    def __str__(self) -> str:
        return f"{self.hostname} ({self.seen_at:%H:%M:%S})"
