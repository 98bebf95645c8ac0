from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = _("Reconciliation")

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from reconciliation.metrics import ReconciliationCollector

        if not getattr(REGISTRY, "_shop_reconciliation_registered", False):
            REGISTRY.register(ReconciliationCollector())
            REGISTRY._shop_reconciliation_registered = True  # type: ignore[attr-defined]
