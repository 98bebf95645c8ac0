"""The sandbox's one Django app (label `sandbox`), separate from the shop's apps."""
from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandbox"
    label = "sandbox"
    verbose_name = "Sandbox payment gateway"
