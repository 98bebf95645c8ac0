"""The demo catalogue and demo accounts created by `make run`."""
from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from shop.models import Product, Sku

DEMO_PRODUCTS = [
    # slug, name, description, [(code, variant, price in fen, stock)]
    ("longjing-tea", "Longjing green tea", "Spring-picked West Lake Longjing, pan-fired by hand.",
     [("TEA-LJ-250", "250 g", 8800, 100), ("TEA-LJ-500", "500 g", 16800, 50)]),
    ("ceramic-cup", "Ceramic tea cup", "Jingdezhen porcelain, 120 ml.",
     [("CUP-WHITE", "White", 3990, 200), ("CUP-BLUE", "Blue and white", 4250, 120)]),
    ("bamboo-notebook", "Bamboo notebook", "A5, 120 pages of bamboo paper.",
     [("NOTE-A5", "A5", 1999, 300)]),
    ("silk-scarf", "Silk scarf", "Hangzhou mulberry silk, 90 × 90 cm.",
     [("SCARF-RED", "Red", 29900, 40)]),
    ("walnut-tea-table", "Walnut tea table", "Solid walnut, made to order.",
     [("TABLE-WALNUT", "120 cm", 128800, 5)]),
]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    is_staff: bool = False
    is_superuser: bool = False
    group: str = ""


DEMO_ACCOUNTS = [
    DemoAccount("shopper", "shopper-demo-1", "shopper"),
    DemoAccount("service", "service-demo-1", "customer service", is_staff=True, group="Customer service"),
    # A second reviewer, for refunds that need two approvals (maker-checker).
    DemoAccount("service2", "service-demo-2", "customer service", is_staff=True, group="Customer service"),
    DemoAccount("finance", "finance-demo-1", "finance", is_staff=True, group="Finance"),
    DemoAccount("admin", "admin-demo-1", "administrator", is_staff=True, is_superuser=True),
]

# Django permissions each staff group holds (app_label.codename). Later
# capabilities extend these lists with their own permissions.
GROUP_PERMISSIONS = {
    "Customer service": [
        "orders.view_order", "orders.view_orderevent", "orders.view_orderline", "orders.ship_order",
        "shop.view_product",
        "shop.view_sku", "payments.view_payment", "payments.view_paymentevent", "payments.view_gatewaynotification",
        "refunds.view_refund", "refunds.view_refundevent", "refunds.view_refundapproval", "refunds.review_refund",
        "refunds.view_invariantviolation", "shop.view_outboxmessage",
    ],
    "Finance": [
        "orders.view_order", "orders.view_orderevent", "orders.view_orderline", "payments.view_payment",
        "payments.view_paymentevent", "payments.view_gatewaynotification", "refunds.view_refund",
        "refunds.view_refundevent", "refunds.view_refundapproval", "refunds.view_invariantviolation",
        "shop.view_outboxmessage",
        # The finance pages (/finance/reconciliation/), deciding there, and the records in admin.
        "reconciliation.view_reports", "reconciliation.decide_discrepancies", "reconciliation.view_statement",
        "reconciliation.view_statementrun", "reconciliation.view_statementevent", "reconciliation.view_discrepancy",
        "reconciliation.view_discrepancyevent",
    ],
}


def _permissions(names: list[str]) -> list[Permission]:
    permissions = []
    for name in names:
        app_label, codename = name.split(".")
        permission = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if permission is not None:
            permissions.append(permission)
    return permissions


@transaction.atomic
def demo_setup() -> list[DemoAccount]:
    """Create the demo catalogue and accounts; running it again changes nothing.

    Existing stock is left alone, so a second run never restocks a shelf the
    demo has sold from.
    """
    for slug, name, description, skus in DEMO_PRODUCTS:
        product, _ = Product.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description}
        )
        for code, variant, price_minor, stock in skus:
            Sku.objects.get_or_create(
                code=code,
                defaults={"product": product, "name": variant, "price_minor": price_minor, "stock": stock},
            )
    for group_name, permission_names in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(*_permissions(permission_names))

    User = get_user_model()
    for account in DEMO_ACCOUNTS:
        user, created = User.objects.get_or_create(
            username=account.username,
            defaults={
                "email": f"{account.username}@example.com",
                "is_staff": account.is_staff,
                "is_superuser": account.is_superuser,
            },
        )
        if created:
            user.set_password(account.password)
            user.save(update_fields=["password"])
        if account.group:
            user.groups.add(Group.objects.get(name=account.group))
    return DEMO_ACCOUNTS
