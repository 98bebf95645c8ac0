import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory, override_settings

from shop.demo import DEMO_ACCOUNTS, demo_setup
from shop.models import Product, Sku


@pytest.mark.django_db
def test_demo_setup_is_idempotent_and_leaves_stock_alone():
    demo_setup()
    Sku.objects.filter(code="TEA-LJ-250").update(stock=3)
    demo_setup()
    assert Product.objects.count() == 5
    assert Sku.objects.get(code="TEA-LJ-250").stock == 3
    assert get_user_model().objects.count() == len(DEMO_ACCOUNTS)
    for account in DEMO_ACCOUNTS:
        # django-axes (login throttling) needs the request a sign-in comes with.
        request = RequestFactory().post("/accounts/login/")
        user = authenticate(request=request, username=account.username, password=account.password)
        assert user is not None and user.is_staff == account.is_staff


@pytest.mark.django_db
def test_demo_setup_refuses_without_debug():
    with override_settings(DEBUG=False), pytest.raises(CommandError):
        call_command("demo_setup")
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_every_staff_group_permission_exists():
    """demo_setup skips a permission it cannot find; a typo here would silently hide a page from staff."""
    from django.contrib.auth.models import Permission

    from shop.demo import GROUP_PERMISSIONS

    for group, names in GROUP_PERMISSIONS.items():
        for name in names:
            app_label, codename = name.split(".")
            assert Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists(), (
                group, name)
