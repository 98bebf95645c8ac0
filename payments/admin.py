from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from orders.admin import ReadOnlyInline, order_admin_inline_register
from payments.exceptions import AmountMismatch, GatewayError
from payments.models import GatewayNotification, Payment, PaymentEvent
from payments.services import notification_process, payment_sync
from shop.actors import Actor
from shop.admin_actions import ShopModelAdmin
from shop.admin_display import yuan_column


class OrderPaymentInline(ReadOnlyInline):
    """The order's payment attempts on its admin page, each linking to its own."""

    model = Payment
    verbose_name_plural = _("payment attempts")
    fields = ("attempt", "gateway", "method", "amount", "status", "refund_required", "paid_at", "created_at")
    readonly_fields = fields
    ordering = ("attempt_no",)

    amount = yuan_column("amount_minor", _("amount"))

    @admin.display(description=_("merchant trade number"))
    def attempt(self, payment: Payment) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:payments_payment_change", args=[payment.pk]),
                           payment.out_trade_no)


order_admin_inline_register(OrderPaymentInline)


class PaymentEventInline(admin.TabularInline):
    model = PaymentEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "from_status", "to_status", "actor_kind", "actor_user", "actor_label",
              "reason", "notification", "detail")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(ShopModelAdmin):
    # No second COUNT(*) of the whole table on every page, and 50 rows a
    # page: rendering the rows is most of a list's time (docs/architecture.md
    # "Performance").
    show_full_result_count = False
    list_per_page = 50
    list_display = ("out_trade_no", "order", "gateway", "method", "amount", "status",
                    "refund_required", "paid_at", "created_at")
    list_filter = ("status", "gateway", "method", "refund_required", "created_at")
    search_fields = ("out_trade_no", "order__order_no", "gateway_trade_no")
    date_hierarchy = "created_at"
    list_select_related = ("order",)
    inlines = [PaymentEventInline]
    actions = ["query_gateway"]
    # Money and status change only through services; money shows in yuan.
    readonly_fields = ["amount" if field.name == "amount_minor" else field.name for field in Payment._meta.fields]
    # Every field read-only and listed, so no form field for the raw fen appears.
    fields = tuple(readonly_fields)

    amount = yuan_column("amount_minor", _("amount"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # It changes the payment (and maybe the order): the change permission.
    @admin.action(description=_("Ask the gateway for the current state"), permissions=["change"])
    def query_gateway(self, request, queryset):
        for payment in queryset:
            try:
                payment = payment_sync(payment_id=payment.pk, actor=Actor.staff(request.user))
            except (GatewayError, AmountMismatch) as exc:
                self.message_user(request, f"{payment.out_trade_no}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{payment.out_trade_no}: {payment.status}", messages.SUCCESS)


@admin.register(GatewayNotification)
class GatewayNotificationAdmin(ShopModelAdmin):
    # No second COUNT(*) of the whole table on every page, and 50 rows a
    # page: rendering the rows is most of a list's time (docs/architecture.md
    # "Performance").
    show_full_result_count = False
    list_per_page = 50
    list_display = ("id", "received_at", "gateway", "kind", "out_trade_no", "verified", "outcome",
                    "process_count")
    list_filter = ("gateway", "kind", "outcome", "verified", "received_at")
    search_fields = ("out_trade_no", "dedupe_key", "payment__order__order_no")
    date_hierarchy = "received_at"
    actions = ["reprocess"]
    readonly_fields = ("gateway", "kind", "received_at", "remote_addr", "headers", "raw_body", "verified",
                       "dedupe_key", "out_trade_no", "payment", "outcome", "outcome_detail", "duplicate_of",
                       "process_count", "processed_at")
    exclude = ("body",)

    class Media:
        css = {"all": ["css/admin-inbox.css"]}

    @admin.display(description=_("raw body"))
    def raw_body(self, obj: GatewayNotification) -> str:
        return format_html('<pre class="raw-body">{}</pre>', obj.body_text)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Process again (safe: an applied notification is never applied twice)"),
                  permissions=["change"])
    def reprocess(self, request, queryset):
        for notification in queryset:
            try:
                ack = notification_process(notification=notification)
            except Exception as exc:  # shown to staff; the row records it too
                self.message_user(request, f"#{notification.pk}: {exc!r}", messages.ERROR)
                continue
            notification.refresh_from_db()
            self.message_user(request, f"#{notification.pk}: {notification.get_outcome_display()} "
                                       f"(answer {ack.status})")
