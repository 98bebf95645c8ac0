"""The notify endpoints' edge: what is stored, what is refused before the inbox,
and how staff replay each kind through its own handler."""
import pytest
from django.urls import reverse

from payments.models import GatewayNotification, NotificationKind, NotificationOutcome, Payment, PaymentStatus
from tests.payments.factories import start_payment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def only_fake_gateway(settings):
    settings.PAYMENT_GATEWAYS = ["fake"]


def notify_url(gateway="fake") -> str:
    return reverse("payments:notify", kwargs={"gateway": gateway})


def post_notification(client, raw, **extra):
    return client.post(notify_url(), raw.body, content_type="application/json",
                       HTTP_X_FAKE_SIGNATURE=raw.header("X-Fake-Signature"), **extra)


class TestInboxRedaction:
    def test_cookie_authorization_and_unknown_headers_are_never_stored(self, client, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        raw = fake_gateway.notification(payment.out_trade_no)

        response = post_notification(client, raw, HTTP_COOKIE="sessionid=stolen-session",
                                     HTTP_AUTHORIZATION="Bearer secret-token", HTTP_X_SOMETHING="else")

        assert response.status_code == 200
        stored = GatewayNotification.objects.get()
        assert {name.lower() for name in stored.headers} == {"content-type", "x-fake-signature"}
        assert "stolen-session" not in str(stored.headers) and "secret-token" not in str(stored.headers)
        assert stored.outcome == NotificationOutcome.APPLIED  # verified with what was kept
        assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED

    def test_the_migration_cleans_rows_stored_before(self):
        from importlib import import_module

        from django.apps import apps

        cleaning = import_module("payments.migrations.0003_notification_headers_redacted")
        row = GatewayNotification.objects.create(
            gateway="wechatpay", kind="payment", body=b"{}", received_at="2026-01-01T00:00:00Z",
            headers={"Cookie": "sessionid=x", "Authorization": "Bearer y", "Wechatpay-Signature": "sig",
                     "Wechatpay-Timestamp": "1", "Content-Type": "application/json", "X-Real-Ip": "10.0.0.1"})

        cleaning.keep_protocol_headers_only(apps, None)

        row.refresh_from_db()
        assert row.headers == {"Wechatpay-Signature": "sig", "Wechatpay-Timestamp": "1",
                               "Content-Type": "application/json"}


class TestOversized:
    def test_a_10_mb_body_gets_the_providers_error_and_is_recorded_by_size_only(self, client, fake_gateway):
        body = b"x" * (10 * 1024 * 1024)
        response = client.post(notify_url(), body, content_type="application/json")
        assert (response.status_code, response.content) == (400, b"fail")
        stored = GatewayNotification.objects.get()
        assert stored.outcome == NotificationOutcome.REJECTED
        assert f"body of {len(body)} bytes is over the limit" in stored.outcome_detail
        assert bytes(stored.body) == b""

    def test_a_refund_notification_over_the_limit_too(self, client, monkeypatch, fake_gateway):
        from payments.gateways.fake import FakeGateway

        monkeypatch.setattr(FakeGateway, "parse_refund_notification", lambda self, raw: None)
        response = client.post(reverse("refunds:notify", kwargs={"gateway": "fake"}),
                               b"{" + b" " * (10 * 1024 * 1024) + b"}", content_type="application/json")
        assert (response.status_code, response.content) == (400, b"fail")
        assert GatewayNotification.objects.get().kind == NotificationKind.REFUND


class TestSourceAllowlist:
    def test_off_by_default_any_source_is_heard(self, client, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        assert post_notification(client, fake_gateway.notification(payment.out_trade_no),
                                 REMOTE_ADDR="203.0.113.9").status_code == 200

    def test_on_a_source_outside_it_is_refused_in_the_providers_format_and_logged(
            self, client, fake_gateway, settings, caplog):
        settings.NOTIFY_ALLOWED_IPS = {"fake": ["198.51.100.0/24"]}
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        raw = fake_gateway.notification(payment.out_trade_no)

        refused = post_notification(client, raw, REMOTE_ADDR="203.0.113.9")

        assert (refused.status_code, refused.content) == (400, b"fail")
        assert "from 203.0.113.9 refused" in caplog.text
        assert not GatewayNotification.objects.exists()
        assert Payment.objects.get(pk=payment.pk).status != PaymentStatus.SUCCEEDED
        assert post_notification(client, raw, REMOTE_ADDR="198.51.100.7").status_code == 200
        assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED

    def test_through_a_trusted_proxy_the_forwarded_address_counts_and_is_stored(self, client, fake_gateway,
                                                                                 settings):
        settings.NOTIFY_ALLOWED_IPS = {"fake": ["198.51.100.0/24"]}
        settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        raw = fake_gateway.notification(payment.out_trade_no)

        # A client's own X-Forwarded-For entry (left) is never believed.
        spoofed = post_notification(client, raw, REMOTE_ADDR="10.0.0.2",
                                    HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9")
        assert spoofed.status_code == 400
        # Without a trusted proxy in between, the header is ignored entirely.
        direct = post_notification(client, raw, REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.7")
        assert direct.status_code == 400
        through_proxy = post_notification(client, raw, REMOTE_ADDR="10.0.0.2",
                                          HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.7")
        assert through_proxy.status_code == 200
        assert GatewayNotification.objects.get().remote_addr == "198.51.100.7"


class TestReplayByKind:
    def test_processing_a_refund_notification_again_uses_the_refund_handler(
            self, monkeypatch, fake_gateway, django_capture_on_commit_callbacks):
        from payments.gateways.base import GatewayRefundStatus, RefundNotification
        from payments.gateways.fake import FakeGateway
        from payments.services import notification_process, notification_receive
        from refunds.models import Refund, RefundStatus
        from refunds.services import refund_approve
        from tests.refunds.factories import apply_for_refund, paid_order, reviewer

        fake_gateway.refund_outcome = GatewayRefundStatus.PROCESSING
        order, payment = paid_order()
        refund = apply_for_refund(order, 1000)
        with django_capture_on_commit_callbacks(execute=True):
            refund_approve(refund_id=refund.pk, reviewer=reviewer())
        assert Refund.objects.get(pk=refund.pk).status == RefundStatus.PROCESSING

        def parse_refund_notification(self, raw):
            return RefundNotification(out_trade_no=payment.out_trade_no, out_refund_no=refund.out_refund_no,
                                      status=GatewayRefundStatus.SUCCEEDED, amount_minor=1000,
                                      total_minor=payment.amount_minor, dedupe_key="R-1", gateway_refund_id="G1")

        def parse_notification(self, raw):
            raise AssertionError("a refund notification must never go down the payment path")

        monkeypatch.setattr(FakeGateway, "parse_refund_notification", parse_refund_notification)
        monkeypatch.setattr(FakeGateway, "parse_notification", parse_notification)
        stored = notification_receive(gateway_code="fake", kind=NotificationKind.REFUND,
                                      raw=fake_gateway.notification(payment.out_trade_no))
        assert notification_process(notification=stored).status == 200
        assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED

        assert notification_process(notification=stored).status == 200  # staff: "Process again"
        stored.refresh_from_db()
        assert (stored.outcome, stored.process_count) == (NotificationOutcome.APPLIED, 2)
