from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from shop.admin_display import YuanField, yuan_column
from shop.models import OutboxMessage, Product, Sku

admin.site.site_header = _("Shop administration")
admin.site.site_title = _("Shop administration")
admin.site.index_title = _("Orders, payments and refunds")


class SkuForm(forms.ModelForm):
    """Staff type the price in yuan; the model keeps fen (price_minor)."""

    price = YuanField(label=_("price (¥)"))

    class Meta:
        model = Sku
        fields = ("product", "code", "name", "currency", "stock", "is_active")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial.setdefault("price", self.instance.price_minor)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("price") is not None:
            self.instance.price_minor = cleaned["price"]
        return cleaned


class SkuInline(admin.TabularInline):
    model = Sku
    form = SkuForm
    extra = 0
    fields = ("code", "name", "price", "currency", "stock", "is_active")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "slug", "skus__code")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [SkuInline]


@admin.register(Sku)
class SkuAdmin(admin.ModelAdmin):
    form = SkuForm
    list_display = ("code", "product", "name", "price_display", "stock", "is_active")
    fields = ("product", "code", "name", "price", "currency", "stock", "is_active")
    list_editable = ("stock", "is_active")
    list_filter = ("is_active",)
    search_fields = ("code", "product__name", "name")
    list_select_related = ("product",)

    price_display = yuan_column("price_minor", _("price"))


class OutboxStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("pending", _("Pending")), ("completed", _("Completed")), ("given_up", _("Given up"))]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(completed_at__isnull=True, failed_at__isnull=True)
        if self.value() == "completed":
            return queryset.filter(completed_at__isnull=False)
        if self.value() == "given_up":
            return queryset.filter(failed_at__isnull=False)
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """Read-only: the relay and the worker move these rows, never a person."""

    list_display = ("id", "task", "args", "created_at", "due_at", "deliveries", "completed_at", "failed_at")
    list_filter = (OutboxStateFilter, "task")
    search_fields = ("task",)
    readonly_fields = ("task", "args", "kwargs", "created_at", "due_at", "deliveries", "completed_at",
                       "failed_at", "last_error")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
