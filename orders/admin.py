from django.contrib import admin

from orders.models import Order, OrderEvent, OrderLine


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    fields = ("sku_code", "name", "unit_price_minor", "quantity")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "from_status", "to_status", "actor_kind", "actor_user", "actor_label", "reason", "reference")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("order_no", "shopper", "status", "total_minor", "created_at", "paid_at")
    list_filter = ("status", "created_at")
    search_fields = ("order_no", "shopper__username", "consignee_name", "consignee_phone")
    date_hierarchy = "created_at"
    list_select_related = ("shopper",)
    inlines = [OrderLineInline, OrderEventInline]
    # Money and status change only through services, never by hand.
    readonly_fields = (
        "order_no", "shopper", "status", "total_minor", "currency", "created_at",
        "expires_at", "paid_at", "closed_at",
    )
    fields = readonly_fields + ("consignee_name", "consignee_phone", "consignee_address")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
