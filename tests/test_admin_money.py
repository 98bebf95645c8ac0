"""Money in admin is yuan with two decimals, never raw fen; the order's page has its
payments, refunds and events with links, and the shopper's contact."""
import re

import pytest
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.urls import reverse

from refunds.services import refund_approve
from tests.refunds.factories import apply_for_refund, paid_order, reviewer

SHOP_APPS = {"shop", "orders", "payments", "refunds", "reconciliation", "archive"}


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pass-word-1")


def shown_names(model_admin, request, obj):
    names = list(model_admin.get_list_display(request))
    names += flatten_fieldsets(model_admin.get_fieldsets(request, obj))
    for inline in model_admin.get_inline_instances(request, obj):
        names += flatten_fieldsets(inline.get_fieldsets(request, obj))
    return [name for name in names if isinstance(name, str)]


@pytest.mark.django_db(transaction=True)
def test_no_admin_list_or_page_of_the_shop_shows_an_amount_in_fen(superuser, fake_gateway, settings, client):
    settings.PAYMENT_GATEWAYS = ["fake"]
    order, _ = paid_order(price_minor=123456)
    apply_for_refund(order, 100)
    request = RequestFactory().get("/admin/")
    request.user = superuser
    client.force_login(superuser)
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in SHOP_APPS:
            continue
        obj = model_admin.get_queryset(request).first()
        raw = [name for name in shown_names(model_admin, request, obj) if name.endswith("_minor")]
        assert raw == [], f"{model._meta.label} shows fen: {raw}"
        opts = model._meta
        for url in [reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")] + (
                [reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])] if obj else []):
            page = client.get(url).content.decode()
            # What a gateway said is kept as it said it (the raw body, a query's answer).
            page = re.sub(r"<pre[^>]*>.*?</pre>|<td class=\"field-detail\">.*?</td>", "", page, flags=re.S)
            assert "(fen)" not in page and "123456" not in page.replace(order.order_no, ""), url
    assert "¥1,234.56" in client.get(reverse("admin:orders_order_changelist")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_orders_page_has_its_payments_refunds_and_events_linked_in_yuan(superuser, fake_gateway, settings,
                                                                            client):
    settings.PAYMENT_GATEWAYS = ["fake"]
    order, payment = paid_order(price_minor=21050)
    refund = apply_for_refund(order, 5025)
    refund_approve(refund_id=refund.pk, reviewer=reviewer())
    client.force_login(superuser)

    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()

    assert f'href="{reverse("admin:payments_payment_change", args=[payment.pk])}">{payment.out_trade_no}<' in page
    assert f'href="{reverse("admin:refunds_refund_change", args=[refund.pk])}">{refund.out_refund_no}<' in page
    assert "¥210.50" in page and "¥50.25" in page
    assert f'href="mailto:{order.shopper.email}"' in page and f'href="tel:{order.consignee_phone}"' in page
    assert "Order events" in page and "Partially refunded" in page
    assert re.search(r'class="viewsitelink"', page)
    assert 'name="_save"' not in page  # nothing to save on a read-only page


@pytest.mark.django_db
def test_staff_type_a_sku_price_in_yuan_and_it_is_kept_in_fen(superuser, client, tea):
    client.force_login(superuser)
    url = reverse("admin:shop_sku_change", args=[tea.pk])
    assert 'name="price" value="88.00"' in client.get(url).content.decode()
    data = {"product": tea.product_id, "code": tea.code, "name": tea.name, "price": "99.9", "currency": "CNY",
            "stock": 10, "is_active": "on"}
    assert client.post(url, data).status_code == 302
    tea.refresh_from_db()
    assert tea.price_minor == 9990
    response = client.post(url, {**data, "price": "1.234"})
    assert "Ensure that there are no more than 2 decimal places." in response.content.decode()
    tea.refresh_from_db()
    assert tea.price_minor == 9990
