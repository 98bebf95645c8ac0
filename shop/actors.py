"""Who or what caused a state change, recorded on every event row."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class ActorKind(models.TextChoices):
    SHOPPER = "shopper", _("Shopper")
    STAFF = "staff", _("Staff")
    GATEWAY = "gateway", _("Gateway")
    SYSTEM = "system", _("System")


@dataclass(frozen=True)
class Actor:
    kind: str
    user: AbstractBaseUser | None = None
    # The gateway code or the system job's name ("janitor", "checkout").
    label: str = ""

    @classmethod
    def shopper(cls, user: AbstractBaseUser) -> Actor:
        return cls(ActorKind.SHOPPER, user=user)

    @classmethod
    def staff(cls, user: AbstractBaseUser) -> Actor:
        return cls(ActorKind.STAFF, user=user)

    @classmethod
    def gateway(cls, code: str) -> Actor:
        return cls(ActorKind.GATEWAY, label=code)

    @classmethod
    def system(cls, job: str) -> Actor:
        return cls(ActorKind.SYSTEM, label=job)

    def stamp(self) -> dict:
        """The actor fields of an ActorEvent row."""
        return {"actor_kind": self.kind, "actor_user": self.user, "actor_label": self.label}


class ActorEvent(models.Model):
    """What every event log row (orders, payments, refunds) records: who or what, why, when."""

    actor_kind = models.CharField(_("by"), max_length=16, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("user"),
    )
    actor_label = models.CharField(_("gateway or job"), max_length=64, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("time"), auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "pk"]
