"""Statements and discrepancies in admin: read-only records, one action that calls a service.

Finance works on the finance pages (/finance/reconciliation/); admin shows
the same rows with their history and offers "reconcile again" for a day.
"""
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from reconciliation.models import (
    Discrepancy,
    DiscrepancyEvent,
    DiscrepancyStatus,
    Statement,
    StatementEvent,
    StatementRun,
)
from reconciliation.permissions import DECIDE_PERMISSION
from shop.money import Money
from shop.outbox import outbox_enqueue


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class StatementRunInline(ReadOnlyInline):
    model = StatementRun
    fields = ("created_at", "actor_kind", "actor_user", "actor_label", "outcome", "duration_ms", "line_count",
              "matched_count", "found", "opened", "cleared", "carried", "healed", "reopened_day", "detail")
    readonly_fields = fields
    verbose_name_plural = _("runs (who or what reconciled the day, and what changed)")


class StatementEventInline(ReadOnlyInline):
    model = StatementEvent
    fields = ("created_at", "from_status", "to_status", "actor_kind", "actor_user", "actor_label", "reason")
    readonly_fields = fields


def _yuan(minor: int | None, currency: str = "CNY") -> str:
    return "" if minor is None else Money(minor, currency).format()


@admin.register(Statement)
class StatementAdmin(admin.ModelAdmin):
    list_display = ("day", "gateway", "status", "paid_display", "refunded_display", "fees_display", "net_display",
                    "line_count", "matched_count", "open_display", "signed_off_at", "alarm", "finance_link")
    list_filter = ("gateway", "status", "alarm")
    date_hierarchy = "day"
    search_fields = ("gateway", "sha256")
    # Money is shown in yuan by the *_display columns, never as raw fen.
    readonly_fields = [field.name for field in Statement._meta.fields if not field.name.endswith("_minor")] + [
        "paid_display", "refunded_display", "fees_display", "net_display", "local_paid_display",
        "local_refunded_display", "local_net_display"]
    exclude = [field.name for field in Statement._meta.fields if field.name.endswith("_minor")]
    inlines = [StatementRunInline, StatementEventInline]
    actions = ["reconcile_again"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm(DECIDE_PERMISSION):
            actions.pop("reconcile_again", None)
        return actions

    @admin.display(description=_("paid (bill)"), ordering="bill_payment_minor")
    def paid_display(self, statement: Statement) -> str:
        return _yuan(statement.bill_payment_minor, statement.currency)

    @admin.display(description=_("refunded (bill)"), ordering="bill_refund_minor")
    def refunded_display(self, statement: Statement) -> str:
        return _yuan(statement.bill_refund_minor, statement.currency)

    @admin.display(description=_("fees (bill)"), ordering="bill_fee_minor")
    def fees_display(self, statement: Statement) -> str:
        return _yuan(statement.bill_fee_minor, statement.currency)

    @admin.display(description=_("net (bill)"))
    def net_display(self, statement: Statement) -> str:
        return statement.bill_net.format()

    @admin.display(description=_("paid (ours)"), ordering="local_payment_minor")
    def local_paid_display(self, statement: Statement) -> str:
        return _yuan(statement.local_payment_minor, statement.currency)

    @admin.display(description=_("refunded (ours)"), ordering="local_refund_minor")
    def local_refunded_display(self, statement: Statement) -> str:
        return _yuan(statement.local_refund_minor, statement.currency)

    @admin.display(description=_("net (ours)"))
    def local_net_display(self, statement: Statement) -> str:
        return statement.local_net.format()

    def get_queryset(self, request):
        # One count per page, not per row.
        return super().get_queryset(request).annotate(
            open_count=Count("discrepancies", filter=Q(discrepancies__status=DiscrepancyStatus.OPEN)))

    @admin.display(description=_("open discrepancies"), ordering="open_count")
    def open_display(self, statement: Statement) -> int:
        return statement.open_count  # type: ignore[attr-defined]  # annotated by get_queryset

    @admin.display(description=_("finance page"))
    def finance_link(self, statement: Statement) -> str:
        url = reverse("reconciliation:day", args=[statement.gateway, statement.day.isoformat()])
        return format_html('<a href="{}">{}</a>', url, _("open"))

    @admin.action(description=_("Reconcile again (download the bill anew)"))
    def reconcile_again(self, request, queryset):
        # Each day is reconciled by the worker (in-process without Redis),
        # through the outbox: a broker outage delays it, never loses it.
        with transaction.atomic():
            for statement in queryset:
                outbox_enqueue("reconciliation.tasks.statement_reconcile_task", statement.gateway,
                               statement.day.isoformat(), True)
        # Without a broker the day was reconciled during the commit; with one,
        # the worker takes it up and the page shows its state so far.
        for statement in queryset:
            statement.refresh_from_db(fields=["status"])
            self.message_user(request, _("%(statement)s: queued to be reconciled again (now: %(status)s)") % {
                "statement": statement, "status": statement.get_status_display()}, messages.SUCCESS)


class DiscrepancyEventInline(ReadOnlyInline):
    model = DiscrepancyEvent
    fields = ("created_at", "from_status", "to_status", "actor_kind", "actor_user", "actor_label", "reason",
              "detail")
    readonly_fields = fields


@admin.register(Discrepancy)
class DiscrepancyAdmin(admin.ModelAdmin):
    list_display = ("reference", "statement", "kind", "status", "bill_amount_display", "local_amount_display",
                    "order", "payment", "refund", "opened_at", "decided_by")
    list_filter = ("kind", "status", "statement__gateway", "heal_action")
    search_fields = ("reference", "order__order_no", "payment__out_trade_no", "refund__out_refund_no")
    list_select_related = ("statement", "order", "payment", "refund", "decided_by")
    readonly_fields = [field.name for field in Discrepancy._meta.fields if not field.name.endswith("_minor")] + [
        "bill_amount_display", "local_amount_display"]
    exclude = [field.name for field in Discrepancy._meta.fields if field.name.endswith("_minor")]
    inlines = [DiscrepancyEventInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Decisions are made on the finance pages, through the services.
        return False

    @admin.display(description=_("amount in the bill"), ordering="bill_amount_minor")
    def bill_amount_display(self, discrepancy: Discrepancy) -> str:
        return _yuan(discrepancy.bill_amount_minor, discrepancy.bill_currency or "CNY")

    @admin.display(description=_("our amount"), ordering="local_amount_minor")
    def local_amount_display(self, discrepancy: Discrepancy) -> str:
        return _yuan(discrepancy.local_amount_minor, discrepancy.local_currency or "CNY")
