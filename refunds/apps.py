from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RefundsConfig(AppConfig):
    name = "refunds"
    verbose_name = _("Refunds")

    def ready(self) -> None:
        from payments.models import NotificationKind
        from payments.services import notification_handler_register
        from refunds import receivers  # noqa: F401  (connects the signal receivers)
        from refunds.services.notifications import refund_notification_handle

        # Refund notifications arrive through the payments inbox, which
        # hands each one (fresh or processed again) to this handler.
        notification_handler_register(NotificationKind.REFUND, refund_notification_handle)
