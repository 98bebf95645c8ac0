"""Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one
username from one address, even the right one is refused until the cool-off (counted
from the last attempt) ends,
on the shop's sign-in page and on the admin's."""
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from tests.shop.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_member(db):
    user = UserFactory(username="desk", is_staff=True)
    user.set_password("right-password-1")
    user.save()
    return user


@pytest.mark.parametrize("login_path", ["/accounts/login/", "/admin/login/"])
def test_locked_after_n_failures_and_unlocked_after_the_cool_off(client, staff_member, settings, login_path):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(3):
            wrong = client.post(login_path, {"username": "desk", "password": "wrong"})
            assert wrong.status_code in (200, 429)
        locked = client.post(login_path, {"username": "desk", "password": "right-password-1"})
        assert locked.status_code == 429
        assert "Too many sign-in attempts" in locked.content.decode()
        assert "_auth_user_id" not in client.session
        # Another address is not locked out by these failures.
        elsewhere = client.post(login_path, {"username": "desk", "password": "right-password-1"},
                                REMOTE_ADDR="198.51.100.20")
        assert elsewhere.status_code == 302
        client.logout()

    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        unlocked = client.post(login_path, {"username": "desk", "password": "right-password-1"})
        assert unlocked.status_code == 302
        assert client.session["_auth_user_id"] == str(staff_member.pk)


def test_below_the_limit_the_right_password_still_works(client, staff_member, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        client.post("/accounts/login/", {"username": "desk", "password": "wrong"})
    assert client.post("/accounts/login/", {"username": "desk", "password": "right-password-1"}).status_code == 302
