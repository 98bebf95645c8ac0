import sys

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = _("Payments")

    def ready(self) -> None:
        from orders.services import order_expiry_step_register
        from payments.services import order_attempts_close

        # An expired order closes only once its attempts are closed at their
        # gateways (orders/services/expiry.py).
        order_expiry_step_register("payments: close open attempts", order_attempts_close)

        # Name every enabled gateway that cannot work, once, at start-up.
        # Skipped for commands that never take payments (migrate, makemessages...).
        if any(command in sys.argv for command in ("runserver", "run_janitor", "worker", "beat")) or (
            "gunicorn" in sys.argv[0]
        ):
            from payments.gateways import warn_about_configuration

            warn_about_configuration()
