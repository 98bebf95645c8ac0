"""Forgot password, end to end with the locmem mail backend: Django's reset views."""
import re

import pytest
from django.core import mail
from django.urls import reverse

from tests.shop.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_shopper_resets_the_password_from_the_emailed_link(client, settings):
    settings.SITE_URL = "https://shop.example.com"
    user = UserFactory(username="lily", email="lily@example.com")
    assert 'data-testid="forgot-password"' in client.get(reverse("login")).content.decode()

    response = client.post(reverse("password_reset"), {"email": "lily@example.com"})

    assert response.url == reverse("password_reset_done")
    (message,) = mail.outbox
    assert message.to == ["lily@example.com"]
    assert message.subject == "Choose a new password for your shop account"
    # The link starts at SITE_URL, never at whatever Host the request named.
    (link,) = re.findall(r"https://shop\.example\.com(/accounts/reset/\S+/)", message.body)
    form = client.get(link, follow=True)
    assert 'data-testid="set-password"' in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": "bamboo-tea-42", "new_password2": "bamboo-tea-42"})
    assert done.url == reverse("password_reset_complete")

    assert signs_in(client, "lily", "bamboo-tea-42")
    client.post(reverse("logout"))
    assert not signs_in(client, "lily", "pass-word-1")
    # The link works once.
    assert 'data-testid="reset-invalid"' in client.get(link, follow=True).content.decode()
    user.refresh_from_db()
    assert user.check_password("bamboo-tea-42")


def signs_in(client, username: str, password: str) -> bool:
    response = client.post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302 and response.url == reverse("shop:catalogue")


def test_an_unknown_address_gets_the_same_answer_and_no_email(client):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.url == reverse("password_reset_done")
    assert mail.outbox == []


def test_the_email_is_in_the_language_of_the_page(client):
    UserFactory(username="wang", email="wang@example.com")
    client.post(reverse("password_reset"), {"email": "wang@example.com"}, HTTP_ACCEPT_LANGUAGE="zh-CN")
    (message,) = mail.outbox
    assert message.subject == "为您的商店账户设置新密码"
    assert "该链接仅可使用一次" in message.body
