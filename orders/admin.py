"""The order back office: one page with everything about an order, and shipping.

The order's page lists its lines, then what the apps built on orders add
(payments and refunds register their inlines with `order_admin_inline_register`,
since orders imports neither), then the event log. Staff with
`orders.ship_order` mark an order shipped (carrier and tracking number, which
the shopper sees) and completed; both go through orders.services. Nothing
here edits money, status or the address.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import translation
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from orders.exceptions import OrderError
from orders.models import SHIPPABLE_STATUSES, Carrier, Order, OrderEvent, OrderLine, OrderStatus
from orders.services import order_complete, order_ship
from shop.actors import Actor
from shop.admin_display import yuan_column
from shop.money import Money

SHIP_PERMISSION = "orders.ship_order"

_extra_inlines: list[type[admin.options.InlineModelAdmin]] = []


def order_admin_inline_register(inline: type[admin.options.InlineModelAdmin]) -> None:
    """Show `inline` on the order's admin page, after the lines (once per class)."""
    if inline not in _extra_inlines:
        _extra_inlines.append(inline)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ("sku_code", "name", "unit_price", "quantity", "subtotal")
    readonly_fields = fields

    unit_price = yuan_column("unit_price_minor", _("unit price"))

    @admin.display(description=_("subtotal"))
    def subtotal(self, line: OrderLine) -> str:
        return Money(line.line_total_minor).format()


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ("created_at", "from_status", "to_status", "actor_kind", "actor_user", "actor_label", "reason", "reference")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    # No second COUNT(*) of the whole table on every page, and 50 rows a
    # page: rendering the rows is most of a list's time (docs/architecture.md
    # "Performance").
    show_full_result_count = False
    list_per_page = 50
    list_display = ("order_no", "shopper", "consignee", "status", "total", "created_at", "paid_at")
    list_filter = ("status", "created_at")
    # Customer service finds an order by whatever the shopper tells them.
    # The numbers of payments and refunds match exactly: an indexed lookup
    # through the join, where a substring search would scan both tables.
    search_fields = ("order_no", "shopper__username", "shopper__email", "consignee_name", "consignee_phone",
                     "=payments__out_trade_no", "=refunds__out_refund_no")
    search_help_text = _("Order number, refund or trade number, username, email, recipient or phone.")
    date_hierarchy = "created_at"
    list_select_related = ("shopper",)
    fieldsets = (
        (None, {"fields": ("order_no", "status", "total", "created_at", "expires_at", "paid_at", "closed_at")}),
        (_("Shopper"), {"fields": ("shopper_contact", "consignee", "delivery_address", "language_name")}),
        (_("Shipping"), {"fields": ("shipping_carrier", "tracking_number", "shipped_at", "completed_at")}),
    )
    readonly_fields = ("order_no", "status", "total", "created_at", "expires_at", "paid_at", "closed_at",
                       "shopper_contact", "consignee", "delivery_address", "language_name", "shipping_carrier",
                       "tracking_number", "shipped_at", "completed_at")
    change_form_template = "admin/orders/order/change_form.html"

    total = yuan_column("total_minor", _("total"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_inlines(self, request, obj):
        return [OrderLineInline, *_extra_inlines, OrderEventInline]

    @admin.display(description=_("recipient"), ordering="consignee_name")
    def consignee(self, order: Order) -> str:
        return format_html('{} · <a href="tel:{}">{}</a>', order.consignee_name, order.consignee_phone,
                           order.consignee_phone)

    @admin.display(description=_("shopper"))
    def shopper_contact(self, order: Order) -> str:
        shopper = order.shopper
        if shopper.email:
            return format_html('{} · <a href="mailto:{}">{}</a>', shopper.get_username(), shopper.email,
                               shopper.email)
        return shopper.get_username()

    @admin.display(description=_("delivery address"))
    def delivery_address(self, order: Order) -> str:
        return order.delivery_address

    @admin.display(description=_("language"))
    def language_name(self, order: Order) -> str:
        """The language the shopper's emails are in."""
        if not order.language:
            return "—"
        try:
            return str(translation.get_language_info(order.language)["name_translated"])
        except KeyError:
            return order.language

    # -- shipping ----------------------------------------------------------------

    def get_urls(self):
        return [
            path("<path:object_id>/ship/", self.admin_site.admin_view(self.ship_view), name="orders_order_ship"),
            path("<path:object_id>/complete/", self.admin_site.admin_view(self.complete_view),
                 name="orders_order_complete"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = self._order_or_404(object_id)
        extra_context = {
            **(extra_context or {}),
            # Read-only page: no Save buttons that would save nothing.
            "show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False,
            "can_ship": request.user.has_perm(SHIP_PERMISSION),
            "shippable": order.status in SHIPPABLE_STATUSES,
            "completable": order.status == OrderStatus.SHIPPED,
            "carriers": Carrier.choices,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _order_or_404(object_id: str) -> Order:
        if not str(object_id).isdigit():
            raise Http404(object_id)
        return get_object_or_404(Order, pk=int(object_id))

    def _shipping_call(self, request, object_id, call) -> HttpResponseRedirect:
        if request.method != "POST" or not request.user.has_perm(SHIP_PERMISSION):
            raise PermissionDenied
        order = self._order_or_404(object_id)
        try:
            message = call(order)
        except OrderError as exc:
            self.message_user(request, exc.user_message, messages.ERROR)
        else:
            self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:orders_order_change", args=[order.pk]))

    def ship_view(self, request, object_id):
        """POST from the order's page: carrier and tracking number; the order ships."""
        def ship(order: Order) -> str:
            order = order_ship(order_id=order.pk, actor=Actor.staff(request.user),
                               carrier=request.POST.get("carrier", ""),
                               tracking_number=request.POST.get("tracking_number", ""))
            return _("Order %(no)s is shipped with %(carrier)s, tracking number %(tracking)s.") % {
                "no": order.order_no, "carrier": order.get_shipping_carrier_display(),
                "tracking": order.tracking_number}

        return self._shipping_call(request, object_id, ship)

    def complete_view(self, request, object_id):
        def complete(order: Order) -> str:
            order = order_complete(order_id=order.pk, actor=Actor.staff(request.user), reason="marked completed")
            return _("Order %(no)s is completed.") % {"no": order.order_no}

        return self._shipping_call(request, object_id, complete)
