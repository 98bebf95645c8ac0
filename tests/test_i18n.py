"""Every page speaks Simplified Chinese and English."""
import gettext
import re
import shutil
import subprocess
import sys

import polib
import pytest
from django.conf import settings
from django.urls import reverse

LOCALE_DIR = settings.BASE_DIR / "locale"
ZH_PO = LOCALE_DIR / "zh_Hans" / "LC_MESSAGES" / "django.po"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def test_chinese_catalogue_is_complete_and_keeps_placeholders():
    po = polib.pofile(str(ZH_PO))
    assert po.untranslated_entries() == []
    assert po.fuzzy_entries() == []
    for entry in po.translated_entries():
        for translation in translations(entry):
            assert sorted(PLACEHOLDER.findall(entry.msgid)) == sorted(PLACEHOLDER.findall(translation)), entry.msgid


def translations(entry: polib.POEntry) -> list[str]:
    """The msgstr, or every plural form's."""
    return list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]


@pytest.mark.parametrize("language", ["zh_Hans", "en"])
def test_compiled_catalogue_matches_its_source(language):
    po = polib.pofile(str(LOCALE_DIR / language / "LC_MESSAGES" / "django.po"))
    with open(LOCALE_DIR / language / "LC_MESSAGES" / "django.mo", "rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    for entry in po.translated_entries():
        key = entry.msgid if not entry.msgctxt else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural:
            found = [compiled._catalog.get((key, n)) for n in sorted(entry.msgstr_plural)]
        else:
            found = [compiled._catalog.get(key)]
        assert found == translations(entry), f"run `make messages`: {entry.msgid!r} is stale"


def test_catalogue_has_every_marked_string(tmp_path):
    """Catches strings marked for translation but never extracted (`make messages`).

    makemessages writes into the catalogue beside the sources it walks, so it
    runs on a copy of the tree: the committed catalogue is only read.
    """
    if shutil.which("xgettext") is None:
        raise RuntimeError("xgettext missing: `make test` installs the gettext package")
    copy = tmp_path / "tree"
    shutil.copytree(
        settings.BASE_DIR, copy,
        ignore=shutil.ignore_patterns(".git", ".venv", "var", "tests", "sandbox", "test-artifacts", "__pycache__",
                                      "*.mo", "node_modules"),
    )
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete", "--ignore=.venv"],
        cwd=copy,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": "sqlite://"},
        check=True,
        capture_output=True,
    )
    extracted = {entry.msgid for entry in polib.pofile(str(copy / "locale/zh_Hans/LC_MESSAGES/django.po"))
                 if not entry.obsolete}
    committed = {entry.msgid for entry in polib.pofile(str(ZH_PO)) if not entry.obsolete}
    assert extracted - committed == set(), "run `make messages` and translate the new strings"
    assert committed - extracted == set(), "run `make messages`: the catalogue has strings no longer used"


@pytest.mark.django_db
def test_pages_render_in_chinese_for_a_chinese_browser(client, tea):
    page = client.get(reverse("shop:catalogue"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert "商品目录" in page
    assert "¥88.00 起" in page


@pytest.mark.django_db
def test_language_switch_sets_english(client):
    client.post(reverse("set_language"), {"language": "en", "next": "/"}, HTTP_ACCEPT_LANGUAGE="zh-CN")
    page = client.get(reverse("shop:catalogue"), HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "Catalogue" in page and "商品目录" not in page


# -- admin labels and emails, as a Chinese reader sees them -------------------

CJK = re.compile(r"[\u4e00-\u9fff]")
# What may stay as it is in Chinese text: identifiers and marks.
UNTRANSLATED_OK = re.compile(r"^(ID|SKU|#|[\d\s.,:×·—-]*)$")
SHOP_APPS = {"shop", "orders", "payments", "refunds", "reconciliation", "archive"}


def labels_of(page: str, *selectors: str) -> list[str]:
    import lxml.html

    tree = lxml.html.fromstring(page)
    found = []
    for selector in selectors:
        for element in tree.cssselect(selector):
            text = " ".join(element.text_content().split()).rstrip(":：")
            if text:
                found.append(text)
    return found


def untranslated(texts: list[str]) -> list[str]:
    return [text for text in texts if not CJK.search(text) and not UNTRANSLATED_OK.match(text)]


@pytest.fixture
def every_kind_of_row(fake_gateway, settings):
    """One row of each model the shop's admin lists, made through the services."""
    from refunds.models import InvariantViolation
    from shop.models import OutboxMessage
    from tests.refunds.factories import apply_for_refund, paid_order

    settings.PAYMENT_GATEWAYS = ["fake"]
    order, _payment = paid_order()
    apply_for_refund(order, 100, reason_text="scratched")
    InvariantViolation.objects.create(kind="refunds_exceed_paid", subject=order.order_no, detail="-",
                                      last_seen_at="2026-11-22T00:00:00Z")
    assert OutboxMessage.objects.exists()
    # A reconciled day with a discrepancy (a line we never had), for the reconciliation admin.
    from payments.gateways import get_gateway
    from tests.reconciliation.support import DAY, at, reconcile, stranger_line

    # The instance the services use now (changing PAYMENT_GATEWAYS rebuilt it).
    get_gateway("fake").bills[DAY] = [stranger_line("STRANGER1", 100, at(DAY, 10))]
    reconcile()


@pytest.mark.django_db
def test_every_admin_list_and_page_of_the_shop_is_labelled_in_chinese(client, every_kind_of_row):
    """Column headings, filters, field labels, fieldsets and inlines: all from the catalogue."""
    from django.contrib import admin
    from django.contrib.auth import get_user_model

    admin_user = get_user_model().objects.create_superuser("root", "root@example.com", "pass-word-1")
    client.force_login(admin_user)
    pages = 0
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in SHOP_APPS:
            continue
        opts = model._meta
        changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
                                HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
        texts = labels_of(changelist, "#result_list thead th", "#changelist-filter h3", "#changelist-filter summary",
                          "#changelist-form .actions option")
        assert untranslated(texts) == [], f"{opts.label} list: {untranslated(texts)}"
        first = model_admin.get_queryset(_superuser_request(admin_user)).first()
        assert first is not None, f"no {opts.label} row to open"
        change = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]),
                            HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
        texts = labels_of(change, "fieldset h2", ".form-row label", ".inline-group h2", ".inline-group thead th",
                          ".shop-panel h3", ".shop-panel th")
        assert untranslated(texts) == [], f"{opts.label} page: {untranslated(texts)}"
        pages += 2
    assert pages >= 14


def _superuser_request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


@pytest.mark.django_db
def test_the_password_message_djangos_own_catalogue_lacks_is_chinese(client):
    response = client.post(reverse("signup"), {"username": "lin", "email": "lin@example.com",
                                               "password1": "a1b2", "password2": "a1b2"},
                           HTTP_ACCEPT_LANGUAGE="zh-CN")
    page = response.content.decode()
    assert "密码长度太短。密码必须包含至少 8 个字符。" in page
    assert "too short" not in page


ENGLISH_SENTENCE = re.compile(r"[A-Za-z]{3,}(?: [A-Za-z,']{2,}){2,}")


@pytest.mark.django_db(transaction=True)
def test_every_email_speaks_the_shoppers_language(fake_gateway, settings, mailoutbox):
    """Payment confirmation, each refund email and the password reset, for a shopper who ordered in Chinese."""
    from orders.models import Order
    from payments.gateways.base import GatewayRefundStatus
    from payments.models import Payment
    from payments.services import payment_send_confirmation
    from refunds.models import Refund
    from refunds.services import refund_approve, refund_reject
    from tests.refunds.factories import apply_for_refund, paid_order, reviewer

    order, _payment = paid_order()
    Order.objects.filter(pk=order.pk).update(language="zh-hans")
    order.refresh_from_db()
    mailoutbox.clear()
    Payment.objects.filter(order=order).update(confirmation_sent_at=None)
    payment_send_confirmation(payment_id=order.payments.get().pk)
    approved = apply_for_refund(order, 1000)
    refund_approve(refund_id=approved.pk, reviewer=reviewer())
    rejected = apply_for_refund(order, 500)
    refund_reject(refund_id=rejected.pk, reviewer=reviewer("second"), note="照片不清楚")
    fake_gateway.refund_outcome = GatewayRefundStatus.CLOSED
    failed = apply_for_refund(order, 200)
    refund_approve(refund_id=failed.pk, reviewer=reviewer("third"))
    assert Refund.objects.get(pk=failed.pk).status == "failed"
    client_mail = _password_reset_email(order.shopper)
    events = ["payment", "approved", "succeeded", "rejected", "approved", "failed"]
    assert len(mailoutbox) == len(events) + 1, [m.subject for m in mailoutbox]
    for message in mailoutbox:
        for text in (message.subject, message.body):
            assert CJK.search(text), text
            assert ENGLISH_SENTENCE.findall(text.replace(order.lines.get().name, "")) == [], text
    assert client_mail is mailoutbox[-1]


def _password_reset_email(user):
    from django.core import mail
    from django.test import Client

    Client().post(reverse("password_reset"), {"email": user.email}, HTTP_ACCEPT_LANGUAGE="zh-CN")
    return mail.outbox[-1]
