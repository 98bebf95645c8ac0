"""Statements (one gateway's bill for one day), their lines, and the discrepancies
found when they are matched against our payments and refunds.

Both stateful models keep their transition table here and move through
shop.lifecycle.Lifecycle (reconciliation/services/lifecycle.py).
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from shop.actors import ActorEvent
from shop.money import Money


class StatementStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for the bill")
    FETCHED = "fetched", _("Bill downloaded")
    MATCHED = "matched", _("Reconciled")
    NO_BILL = "no_bill", _("No bill")
    FAILED = "failed", _("Failed")


S = StatementStatus
# The statement lifecycle. A matched or no-bill day moves again only when it
# is reconciled anew (a corrected bill, or staff asking); signing off is not
# a status but finance's mark on a finished day.
STATEMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.FETCHED, S.NO_BILL, S.FAILED}),
    S.FETCHED: frozenset({S.MATCHED, S.FAILED}),
    S.FAILED: frozenset({S.FETCHED, S.NO_BILL}),
    S.MATCHED: frozenset({S.FETCHED}),
    S.NO_BILL: frozenset({S.FETCHED}),
}
FINISHED_STATUSES = (S.MATCHED, S.NO_BILL)
del S


class StatementAlarm(models.TextChoices):
    NONE = "", _("None")
    NOT_RECONCILED = "not_reconciled", _("Not reconciled by the alarm time")
    NO_BILL_WITH_TRANSACTIONS = "no_bill_with_transactions", _("No bill, but we had transactions that day")
    REOPENED = "reopened", _("A new discrepancy after sign-off reopened the day")


class Statement(models.Model):
    """One gateway's bill for one bill day, and what matching it found."""

    gateway = models.CharField(_("gateway"), max_length=16)
    day = models.DateField(_("bill day"))
    status = models.CharField(_("status"), max_length=16, choices=StatementStatus.choices,
                              default=StatementStatus.PENDING)
    # Why the last attempt did not succeed (not ready, a hash mismatch, a
    # malformed row...), for staff; "" once matched.
    failure_reason = models.TextField(_("reason"), blank=True)
    # The bill as the provider sent it: its name in the `bills` storage
    # (STORAGES["bills"], any Django storage backend).
    file_name = models.CharField(_("bill file"), max_length=255, blank=True)
    filename = models.CharField(_("provider's file name"), max_length=255, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"), default=0)
    # The SHA-256 of the file whose lines are loaded (a re-run of the same
    # file matches again without reloading them).
    lines_sha256 = models.CharField(_("SHA-256 of the loaded lines"), max_length=64, blank=True)
    attempts = models.PositiveIntegerField(_("download attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    fetched_at = models.DateTimeField(_("downloaded"), null=True, blank=True)
    matched_at = models.DateTimeField(_("reconciled"), null=True, blank=True)
    # What the bill says (its own control totals, checked by the parser
    # against its lines) and what we have for the same bill day.
    line_count = models.PositiveIntegerField(_("lines"), default=0)
    # References the bill lists more than once, found while loading it:
    # {"payment:<out_trade_no>": lines, "refund:<out_refund_no>": lines}.
    repeated = models.JSONField(_("references billed more than once"), default=dict, blank=True)
    matched_count = models.PositiveIntegerField(_("matched lines"), default=0)
    bill_payment_count = models.PositiveIntegerField(_("payments (bill)"), default=0)
    bill_payment_minor = models.BigIntegerField(_("paid (bill, fen)"), default=0)
    bill_refund_count = models.PositiveIntegerField(_("refunds (bill)"), default=0)
    bill_refund_minor = models.BigIntegerField(_("refunded (bill, fen)"), default=0)
    # Charged less given back; positive is what the provider kept.
    bill_fee_minor = models.BigIntegerField(_("fees (bill, fen)"), default=0)
    local_payment_count = models.PositiveIntegerField(_("payments (ours)"), default=0)
    local_payment_minor = models.BigIntegerField(_("paid (ours, fen)"), default=0)
    local_refund_count = models.PositiveIntegerField(_("refunds (ours)"), default=0)
    local_refund_minor = models.BigIntegerField(_("refunded (ours, fen)"), default=0)
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    signed_off_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                      related_name="+", verbose_name=_("signed off by"))
    signed_off_at = models.DateTimeField(_("signed off"), null=True, blank=True)
    sign_off_note = models.TextField(_("sign-off note"), blank=True)
    reopened_at = models.DateTimeField(_("reopened"), null=True, blank=True)
    alarm = models.CharField(_("alarm"), max_length=32, choices=StatementAlarm.choices, blank=True, default="")
    alarm_raised_at = models.DateTimeField(_("alarm raised"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-day", "gateway"]
        verbose_name = _("statement")
        verbose_name_plural = _("statements")
        permissions = [
            ("view_reports", _("Can see the finance reconciliation pages")),
            ("decide_discrepancies", _("Can resolve discrepancies and sign off days")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "day"], name="one_statement_per_gateway_day"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="statement_status_next_attempt")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.day.isoformat()}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def bill_net(self) -> Money:
        return Money(self.bill_payment_minor - self.bill_refund_minor - self.bill_fee_minor, self.currency)

    @property
    def local_net(self) -> Money:
        return Money(self.local_payment_minor - self.local_refund_minor, self.currency)


class BlockRangeIndex(models.Index):
    """A BRIN index on PostgreSQL, a plain one elsewhere.

    A statement's lines are written together, so they sit in consecutive
    blocks: BRIN finds them as fast as a B-tree at a fraction of its size,
    and costs next to nothing to keep up while a million lines are COPYed.
    """

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if schema_editor.connection.vendor == "postgresql":
            using = " USING brin"
        return super().create_sql(model, schema_editor, using=using, **kwargs)


class LineKind(models.TextChoices):
    PAYMENT = "payment", _("Payment")
    REFUND = "refund", _("Refund")


class StatementLine(models.Model):
    """One line of a bill, as the provider wrote it. Loaded in bulk (COPY on
    PostgreSQL) and matched by SQL joins, never one by one."""

    # No database-level foreign key: a million lines are COPYed at once, and
    # a per-row constraint trigger would double the load; the statement's
    # lines are only ever written and deleted by reconciliation's loader.
    statement = models.ForeignKey(Statement, on_delete=models.DO_NOTHING, related_name="lines", db_index=False,
                                  db_constraint=False)
    line_no = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=LineKind.choices)
    out_trade_no = models.CharField(max_length=64)
    out_refund_no = models.CharField(max_length=64, blank=True)
    gateway_trade_no = models.CharField(max_length=64, blank=True)
    gateway_refund_id = models.CharField(max_length=64, blank=True)
    # Always positive; `kind` says which way the money moved.
    amount_minor = models.BigIntegerField()
    fee_minor = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    occurred_at = models.DateTimeField(null=True, blank=True)
    bill_status = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["statement", "line_no"]
        verbose_name = _("statement line")
        verbose_name_plural = _("statement lines")
        # Only the loader writes lines, numbered as it reads them: no
        # uniqueness to keep, and a million-row COPY should not keep a B-tree.
        indexes = [BlockRangeIndex(fields=["statement"], name="statement_line_statement")]

    def __str__(self) -> str:
        return f"{self.statement_id}#{self.line_no}"


class DiscrepancyKind(models.TextChoices):
    """The neutral codes; each one's label and meaning are defined here once."""

    MISSING_HERE = "missing_here", _("Missing here")
    MISSING_AT_GATEWAY = "missing_at_gateway", _("Missing at the gateway")
    AMOUNT_MISMATCH = "amount_mismatch", _("Amount mismatch")
    STATUS_MISMATCH = "status_mismatch", _("Status mismatch")
    DUPLICATE = "duplicate", _("Duplicate")
    CURRENCY_MISMATCH = "currency_mismatch", _("Currency mismatch")


KIND_MEANINGS = {
    DiscrepancyKind.MISSING_HERE: _(
        "The bill has a payment or refund that we do not have as succeeded."),
    DiscrepancyKind.MISSING_AT_GATEWAY: _(
        "We have a succeeded payment or refund that the bill does not list."),
    DiscrepancyKind.AMOUNT_MISMATCH: _("The bill and our record disagree on the amount."),
    DiscrepancyKind.STATUS_MISMATCH: _(
        "The bill shows money moved where our record says otherwise (closed, failed, rejected)."),
    DiscrepancyKind.DUPLICATE: _(
        "The same trade twice in one bill, or two paid attempts for one order."),
    DiscrepancyKind.CURRENCY_MISMATCH: _("The bill and our record disagree on the currency."),
}


class DiscrepancyStatus(models.TextChoices):
    CARRIED = "carried", _("Carried to the next day")
    OPEN = "open", _("Open")
    HEALED = "healed", _("Healed")
    RESOLVED = "resolved", _("Resolved")
    ACCEPTED = "accepted", _("Accepted")
    CLEARED = "cleared", _("Cleared by the bill")


D = DiscrepancyStatus
# The discrepancy lifecycle. Carried is not yet a discrepancy: a success of
# ours near the end of the bill day waits for the next day's bill. Cleared
# is what a re-run (a corrected bill) or a later bill did; healed what the
# gateway's own answer did; resolved and accepted what finance did. Only
# the bill's own changes can bring a cleared one back.
DISCREPANCY_TRANSITIONS: dict[str, frozenset[str]] = {
    D.CARRIED: frozenset({D.OPEN, D.CLEARED}),
    D.OPEN: frozenset({D.HEALED, D.RESOLVED, D.ACCEPTED, D.CLEARED}),
    D.CLEARED: frozenset({D.OPEN, D.CARRIED}),
    D.HEALED: frozenset(),
    D.RESOLVED: frozenset(),
    D.ACCEPTED: frozenset(),
}
# Still to be looked at by someone.
UNSETTLED_STATUSES = (D.CARRIED, D.OPEN)
DECIDED_STATUSES = (D.HEALED, D.RESOLVED, D.ACCEPTED)
del D


class HealAction(models.TextChoices):
    """How the gateway itself can settle a discrepancy: the existing services, never the bill's word."""

    NONE = "", _("None: finance decides")
    PAYMENT_SYNC = "payment_sync", _("Query the payment and apply the answer")
    REFUND_POLL = "refund_poll", _("Poll the refund and apply the answer")


class Discrepancy(models.Model):
    """One thing a bill and our records disagree on, and what became of it."""

    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="discrepancies",
                                  verbose_name=_("statement"))
    kind = models.CharField(_("kind"), max_length=32, choices=DiscrepancyKind.choices)
    status = models.CharField(_("state"), max_length=16, choices=DiscrepancyStatus.choices,
                              default=DiscrepancyStatus.OPEN)
    subject = models.CharField(_("subject"), max_length=8, choices=LineKind.choices)
    # The merchant number it is about: out_trade_no or out_refund_no.
    reference = models.CharField(_("reference"), max_length=64)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              verbose_name=_("order"))
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="+", verbose_name=_("payment"))
    refund = models.ForeignKey("refunds.Refund", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+", verbose_name=_("refund"))
    bill_amount_minor = models.BigIntegerField(_("amount in the bill (fen)"), null=True, blank=True)
    local_amount_minor = models.BigIntegerField(_("our amount (fen)"), null=True, blank=True)
    bill_currency = models.CharField(_("currency in the bill"), max_length=3, blank=True)
    local_currency = models.CharField(_("our currency"), max_length=3, blank=True)
    local_status = models.CharField(_("our status"), max_length=32, blank=True)
    # How many lines of the bill carry this reference.
    occurrences = models.PositiveIntegerField(_("lines in the bill"), default=0)
    line_no = models.PositiveIntegerField(_("first line"), null=True, blank=True)
    occurred_at = models.DateTimeField(_("when"), null=True, blank=True)
    # A carried one waits for this statement (the next bill day's).
    carried_to = models.ForeignKey(Statement, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                   verbose_name=_("carried to"))
    heal_action = models.CharField(_("healing"), max_length=16, choices=HealAction.choices, blank=True,
                                   default="")
    heal_attempts = models.PositiveIntegerField(_("healing attempts"), default=0)
    next_heal_at = models.DateTimeField(_("next healing attempt"), null=True, blank=True)
    # What the gateway answered when asked (the heal's evidence).
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    note = models.TextField(_("note"), blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+", verbose_name=_("decided by"))
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    # Open since (its age), and when it stopped being open.
    opened_at = models.DateTimeField(_("open since"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    created_at = models.DateTimeField(_("found"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-statement__day", "statement__gateway", "kind", "reference"]
        verbose_name = _("discrepancy")
        verbose_name_plural = _("discrepancies")
        constraints = [
            models.UniqueConstraint(fields=["statement", "kind", "subject", "reference"],
                                    name="one_discrepancy_per_kind_and_reference"),
            models.CheckConstraint(condition=~Q(status="resolved") | ~Q(note=""), name="resolved_with_a_note"),
        ]
        indexes = [
            models.Index(fields=["status", "kind"], name="discrepancy_status_kind"),
            models.Index(fields=["status", "next_heal_at"], name="discrepancy_status_next_heal"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.reference}"

    @property
    def meaning(self) -> str:
        return str(KIND_MEANINGS[DiscrepancyKind(self.kind)])

    @property
    def bill_amount(self) -> Money | None:
        return None if self.bill_amount_minor is None else Money(self.bill_amount_minor,
                                                                  self.bill_currency or "CNY")

    @property
    def local_amount(self) -> Money | None:
        return None if self.local_amount_minor is None else Money(self.local_amount_minor,
                                                                   self.local_currency or "CNY")


class StatementEvent(ActorEvent):
    """Append-only log of every statement status move."""

    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(_("from"), max_length=16, choices=StatementStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=16, choices=StatementStatus.choices)
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    class Meta(ActorEvent.Meta):
        verbose_name = _("statement event")
        verbose_name_plural = _("statement events")

    def __str__(self) -> str:
        return f"{self.statement_id}: {self.from_status or '-'} → {self.to_status}"


class DiscrepancyEvent(ActorEvent):
    """Append-only log of every discrepancy move: who or what, when, why, on what evidence."""

    discrepancy = models.ForeignKey(Discrepancy, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(_("from"), max_length=16, choices=DiscrepancyStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=16, choices=DiscrepancyStatus.choices)
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    class Meta(ActorEvent.Meta):
        verbose_name = _("discrepancy event")
        verbose_name_plural = _("discrepancy events")

    def __str__(self) -> str:
        return f"{self.discrepancy_id}: {self.from_status or '-'} → {self.to_status}"


class RunOutcome(models.TextChoices):
    MATCHED = "matched", _("Reconciled")
    NO_BILL = "no_bill", _("No bill")
    NOT_READY = "not_ready", _("Bill not ready yet")
    FAILED = "failed", _("Failed")
    UNAVAILABLE = "unavailable", _("Gateway unavailable")
    UNCHANGED = "unchanged", _("Already reconciled")


class StatementRun(ActorEvent):
    """One attempt to reconcile a day: who or what started it, how long it took, what changed."""

    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="runs")
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    outcome = models.CharField(_("outcome"), max_length=16, choices=RunOutcome.choices, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    line_count = models.PositiveIntegerField(_("lines"), default=0)
    matched_count = models.PositiveIntegerField(_("matched lines"), default=0)
    # Discrepancies this run found, newly opened (or opened again),
    # cleared, carried, and healed.
    found = models.PositiveIntegerField(_("found"), default=0)
    opened = models.PositiveIntegerField(_("opened"), default=0)
    cleared = models.PositiveIntegerField(_("cleared"), default=0)
    carried = models.PositiveIntegerField(_("carried"), default=0)
    healed = models.PositiveIntegerField(_("healed"), default=0)
    reopened_day = models.BooleanField(_("reopened the day"), default=False)
    detail = models.TextField(_("detail"), blank=True)

    class Meta(ActorEvent.Meta):
        verbose_name = _("reconciliation run")
        verbose_name_plural = _("reconciliation runs")

    def __str__(self) -> str:
        return f"{self.statement_id} run {self.pk}: {self.outcome}"
