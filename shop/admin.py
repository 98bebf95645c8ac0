from django.contrib import admin

from shop.models import Product, Sku


class SkuInline(admin.TabularInline):
    model = Sku
    extra = 0
    fields = ("code", "name", "price_minor", "currency", "stock", "is_active")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "slug", "skus__code")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [SkuInline]


@admin.register(Sku)
class SkuAdmin(admin.ModelAdmin):
    list_display = ("code", "product", "name", "price_minor", "stock", "is_active")
    list_editable = ("stock", "is_active")
    list_filter = ("is_active",)
    search_fields = ("code", "product__name", "name")
    list_select_related = ("product",)
