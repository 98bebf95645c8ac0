"""Customer service's refund desk: the queue, one-page review, decisions.

Every decision goes through refunds.services, which checks the dedicated
`refunds.review_refund` permission, records who decided and when, and keeps
the money invariants. Nothing here edits a refund's money or status directly.

Money never moves on the first click: approving (one refund from its page,
or several from the queue), retrying and settling show a confirmation page
with each refund's amount, gateway, order and shopper first, as Django's
delete does; only the confirmation's POST calls the service. Rejecting moves
no money and needs a note, so it goes straight through.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from orders.admin import ReadOnlyInline, order_admin_inline_register
from payments.cashier import gateway_name
from payments.exceptions import GatewayError
from refunds.exceptions import RefundError
from refunds.models import InvariantViolation, Refund, RefundApproval, RefundEvent, RefundStatus
from refunds.permissions import REVIEW_PERMISSION, approval_blocker, may_review
from refunds.selectors import refund_list_awaiting_second_approval, refund_list_decidable_by
from refunds.services import refund_approve, refund_reject, refund_retry, refund_settle_abnormal
from refunds.services.stalled import stalled_q
from shop.admin_actions import ShopModelAdmin
from shop.admin_display import yuan_column
from shop.money import Money

# Decisions that move money (or record that it moved): a confirmation page first.
CONFIRMED_DECISIONS = ("approve", "retry", "settle_succeeded", "settle_failed")


class RefundLogInline(admin.TabularInline):
    """A read-only log on the refund's page: whoever may see the refund sees its history."""

    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("refunds.view_refund")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class RefundEventInline(RefundLogInline):
    model = RefundEvent
    fields = ("created_at", "from_status", "to_status", "actor_kind", "actor_user", "actor_label", "reason",
              "notification")
    readonly_fields = fields


class RefundApprovalInline(RefundLogInline):
    model = RefundApproval
    fields = ("created_at", "reviewer", "note")
    readonly_fields = fields
    verbose_name_plural = _("approvals (who approved each step)")


class OrderRefundInline(ReadOnlyInline):
    """The order's refunds on its admin page, each linking to its review page."""

    model = Refund
    fk_name = "order"
    fields = ("number", "amount", "status", "reason", "automatic", "created_at", "refunded_at")
    readonly_fields = fields

    amount = yuan_column("amount_minor", _("amount"))

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("refunds.view_refund")

    @admin.display(description=_("refund number"))
    def number(self, refund: Refund) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:refunds_refund_change", args=[refund.pk]),
                           refund.out_refund_no)


order_admin_inline_register(OrderRefundInline)


class GatewayFilter(admin.SimpleListFilter):
    title = _("gateway")
    parameter_name = "gateway"

    def lookups(self, request, model_admin):
        codes = Refund.objects.values_list("payment__gateway", flat=True).distinct().order_by("payment__gateway")
        return [(code, gateway_name(code)) for code in codes]

    def queryset(self, request, queryset):
        return queryset.filter(payment__gateway=self.value()) if self.value() else queryset


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = _("needs attention")
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("yes", _("Failed, abnormal, polling gave up, or approved and never sent"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(
                Q(status__in=[RefundStatus.FAILED, RefundStatus.ABNORMAL]) | Q(gave_up_at__isnull=False)
                | stalled_q()
            )
        return queryset


class ReviewFilter(admin.SimpleListFilter):
    """The reviewer's own queue, and the maker-checker one."""

    title = _("review")
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("mine", _("Waiting for my decision")), ("second", _("Awaiting second approval"))]

    def queryset(self, request, queryset):
        if self.value() == "mine":
            return refund_list_decidable_by(request.user, queryset)
        if self.value() == "second":
            return refund_list_awaiting_second_approval(queryset)
        return queryset


def approvals_text(refund: Refund, given: int) -> str:
    """"1 of 2 approvals — waiting for a second reviewer", or what the count means now."""
    if refund.automatic:
        return str(_("automatic: no review"))
    text = ngettext("%(given)d of %(required)d approval", "%(given)d of %(required)d approvals",
                    refund.approvals_required) % {"given": given, "required": refund.approvals_required}
    if refund.status == RefundStatus.REQUESTED and 0 < given < refund.approvals_required:
        return str(_("%(count)s — waiting for a second reviewer")) % {"count": text}
    return text


@admin.register(Refund)
class RefundAdmin(ShopModelAdmin):
    # No second COUNT(*) of the whole table on every page, and 50 rows a
    # page: rendering the rows is most of a list's time (docs/architecture.md
    # "Performance").
    show_full_result_count = False
    list_per_page = 50
    list_display = ("out_refund_no", "order_link", "shopper", "gateway", "amount", "status", "approvals_display",
                    "reason", "automatic", "created_at")
    list_filter = ("status", ReviewFilter, GatewayFilter, "created_at", "automatic", NeedsAttentionFilter)
    # Found by whatever the shopper tells customer service.
    search_fields = ("order__order_no", "out_refund_no", "payment__out_trade_no", "order__shopper__username",
                     "order__shopper__email", "order__consignee_phone")
    search_help_text = _("Order, refund or trade number, username, email or phone.")
    date_hierarchy = "created_at"
    list_select_related = ("order", "order__shopper", "payment")
    inlines = [RefundApprovalInline, RefundEventInline]
    actions = ["approve_selected", "reject_selected", "retry_selected"]
    # The review block above shows what a decision needs; below it only
    # what the gateway said, for when something went wrong.
    fieldsets = (
        (_("At the gateway"), {
            "classes": ("collapse",),
            "fields": ("out_refund_no", "gateway_refund_id", "gateway_status", "submitted_at", "refunded_at",
                       "last_error", "gave_up_at"),
        }),
    )
    readonly_fields = ("out_refund_no", "gateway_refund_id", "gateway_status", "submitted_at", "refunded_at",
                       "last_error", "gave_up_at")
    change_form_template = "admin/refunds/refund/change_form.html"

    amount = yuan_column("amount_minor", _("amount"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        # One subquery for the approvals column instead of a count per row.
        approvals = (RefundApproval.objects.filter(refund=OuterRef("pk")).order_by()
                     .values("refund").annotate(n=Count("pk")).values("n"))
        return super().get_queryset(request).annotate(approval_count=Subquery(approvals))

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm(REVIEW_PERMISSION):
            for name in ("approve_selected", "reject_selected", "retry_selected"):
                actions.pop(name, None)
        return actions

    @admin.display(description=_("order"), ordering="order__order_no")
    def order_link(self, refund: Refund) -> str:
        url = reverse("admin:orders_order_change", args=[refund.order_id])
        return format_html('<a href="{}">{}</a>', url, refund.order.order_no)

    @admin.display(description=_("shopper"), ordering="order__shopper__username")
    def shopper(self, refund: Refund) -> str:
        return refund.order.shopper.get_username()

    @admin.display(description=_("gateway"), ordering="payment__gateway")
    def gateway(self, refund: Refund) -> str:
        return gateway_name(refund.payment.gateway)

    @admin.display(description=_("approvals"))
    def approvals_display(self, refund: Refund) -> str:
        return approvals_text(refund, getattr(refund, "approval_count", None) or 0)

    # -- one page with everything a reviewer needs ------------------------------

    @staticmethod
    def _refund_or_404(object_id: str, queryset=None) -> Refund:
        # A hand-typed or forged id ("abc", "1.5") is a 404, never a ValueError.
        if not str(object_id).isdigit():
            raise Http404(object_id)
        return get_object_or_404(queryset if queryset is not None else Refund.objects, pk=int(object_id))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        refund = self._refund_or_404(object_id, Refund.objects.select_related("order", "order__shopper", "payment"))
        order = refund.order
        approvals = list(refund.approvals.select_related("reviewer"))
        approved_by_me = any(approval.reviewer_id == request.user.pk for approval in approvals)
        extra_context = {
            **(extra_context or {}),
            "refund": refund,
            "order": order,
            "shopper": order.shopper,
            "lines": order.lines.all(),
            "payments": order.payments.all(),
            "other_refunds": order.refunds.exclude(pk=refund.pk),
            "approvals": approvals,
            "approvals_text": approvals_text(refund, len(approvals)),
            "can_review": may_review(request.user),
            "approve_blocker": approval_blocker(
                request.user, shopper_id=order.shopper_id, applicant_id=refund.requested_by_id,
                status=refund.status, approved_by_user=approved_by_me),
            "approved_by_me": approved_by_me,
            "paid": Money(refund.payment.amount_minor, refund.payment.currency),
            "gateway_name": gateway_name(refund.payment.gateway),
            "queue_url": self._queue_url(request),
            # The page records decisions through its own forms: nothing to save.
            "show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path("<path:object_id>/decide/", self.admin_site.admin_view(self.decide_view),
                 name="refunds_refund_decide"),
        ] + super().get_urls()

    def _queue_url(self, request) -> str:
        """The refund queue, with the filters the reviewer came from."""
        return add_preserved_filters({"preserved_filters": self.get_preserved_filters(request), "opts": self.opts},
                                     reverse("admin:refunds_refund_changelist"))

    def decide_view(self, request, object_id):
        """POST from the review page: approve, reject (note required), retry, settle.

        Approving, retrying and settling first answer with the confirmation
        page; its own POST (`confirm`) decides. The reviewer then lands on
        the queue with a message saying what happened.
        """
        if request.method != "POST" or not request.user.has_perm(REVIEW_PERMISSION):
            raise PermissionDenied
        refund = self._refund_or_404(object_id, Refund.objects.select_related("order", "order__shopper", "payment"))
        decision = request.POST.get("decision", "")
        note = request.POST.get("note", "")
        user = request.user
        calls = {
            "approve": lambda: refund_approve(refund_id=refund.pk, reviewer=user, note=note),
            "reject": lambda: refund_reject(refund_id=refund.pk, reviewer=user, note=note),
            "retry": lambda: refund_retry(refund_id=refund.pk, staff=user),
            "settle_succeeded": lambda: refund_settle_abnormal(refund_id=refund.pk, staff=user, succeeded=True,
                                                               note=note),
            "settle_failed": lambda: refund_settle_abnormal(refund_id=refund.pk, staff=user, succeeded=False,
                                                            note=note),
        }
        if decision not in calls:
            raise PermissionDenied
        review_url = add_preserved_filters({"preserved_filters": self.get_preserved_filters(request),
                                            "opts": self.opts},
                                           reverse("admin:refunds_refund_change", args=[refund.pk]))
        if decision == "approve":
            blocker = approval_blocker(user, shopper_id=refund.order.shopper_id, applicant_id=refund.requested_by_id,
                                       status=refund.status,
                                       approved_by_user=refund.approvals.filter(reviewer=user).exists())
            if blocker:
                self.message_user(request, blocker, messages.ERROR)
                return HttpResponseRedirect(review_url)
        if decision in CONFIRMED_DECISIONS and request.POST.get("confirm") != "yes":
            return self._confirmation(request, [refund], decision=decision, note=note,
                                      action_url=request.get_full_path(), cancel_url=review_url)
        try:
            refund = calls[decision]()
        except (RefundError, GatewayError) as exc:
            self.message_user(request, exc.user_message, messages.ERROR)
            return HttpResponseRedirect(review_url)
        refund.refresh_from_db()
        self.message_user(request, decision_message(decision, refund), messages.SUCCESS)
        return HttpResponseRedirect(self._queue_url(request))

    def _confirmation(self, request, refunds, *, decision: str, note: str = "", action_url: str, cancel_url: str,
                      skipped=(), action: str = ""):
        return TemplateResponse(request, "admin/refunds/refund/confirm_decision.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": CONFIRMATION_TITLES[decision],
            "decision": decision,
            "refunds": refunds,
            "skipped": skipped,
            "total": sum((Money(refund.amount_minor, refund.currency) for refund in refunds), Money(0)),
            "note": note,
            "action_url": action_url,
            "action": action,
            "cancel_url": cancel_url,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        })

    # -- list actions -------------------------------------------------------------

    def _each(self, request, queryset, call, decision: str) -> None:
        for refund in queryset:
            try:
                refund = call(refund)
            except (RefundError, GatewayError) as exc:
                self.message_user(request, f"{refund.out_refund_no}: {exc.user_message}", messages.ERROR)
            else:
                refund.refresh_from_db()
                self.message_user(request, decision_message(decision, refund), messages.SUCCESS)

    @admin.action(description=_("Approve the selected refunds…"))
    def approve_selected(self, request, queryset):
        """First a page listing what would be approved (and what cannot be); its button approves."""
        refunds = list(queryset.select_related("order", "order__shopper", "payment"))
        mine = set(RefundApproval.objects.filter(refund__in=refunds, reviewer=request.user)
                   .values_list("refund_id", flat=True))
        approvable, skipped = [], []
        for refund in refunds:
            blocker = approval_blocker(request.user, shopper_id=refund.order.shopper_id,
                                       applicant_id=refund.requested_by_id, status=refund.status,
                                       approved_by_user=refund.pk in mine)
            if blocker:
                skipped.append((refund, blocker))
            else:
                approvable.append(refund)
        if request.POST.get("confirm") == "yes" and approvable:
            self._each(request, approvable, lambda r: refund_approve(refund_id=r.pk, reviewer=request.user),
                       "approve")
            return None
        return self._confirmation(request, approvable, decision="approve", skipped=skipped, action="approve_selected",
                                  action_url=self._queue_url(request), cancel_url=self._queue_url(request))

    @admin.action(description=_("Reject the selected refunds (a note is required)…"))
    def reject_selected(self, request, queryset):
        note = request.POST.get("note", "").strip()
        if request.POST.get("confirm") and note:
            self._each(request, queryset, lambda r: refund_reject(refund_id=r.pk, reviewer=request.user, note=note),
                       "reject")
            return None
        if request.POST.get("confirm"):
            self.message_user(request, _("Say why the refunds are rejected."), messages.ERROR)
        return TemplateResponse(request, "admin/refunds/refund/reject_selected.html", {
            **self.admin_site.each_context(request),
            "refunds": queryset.select_related("order", "order__shopper", "payment"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
            "title": _("Reject refunds"),
            "cancel_url": self._queue_url(request),
        })

    @admin.action(description=_("Retry the selected failed refunds…"))
    def retry_selected(self, request, queryset):
        refunds = list(queryset.select_related("order", "order__shopper", "payment"))
        retryable = [refund for refund in refunds if refund.status == RefundStatus.FAILED]
        skipped = [(refund, _("It has not failed.")) for refund in refunds if refund.status != RefundStatus.FAILED]
        if request.POST.get("confirm") == "yes" and retryable:
            self._each(request, retryable, lambda r: refund_retry(refund_id=r.pk, staff=request.user), "retry")
            return None
        return self._confirmation(request, retryable, decision="retry", skipped=skipped, action="retry_selected",
                                  action_url=self._queue_url(request), cancel_url=self._queue_url(request))


CONFIRMATION_TITLES = {
    "approve": _("Approve these refunds?"),
    "retry": _("Send these refunds to the gateway again?"),
    "settle_succeeded": _("Record that the money was returned?"),
    "settle_failed": _("Record that the money was not returned?"),
}


def decision_message(decision: str, refund: Refund) -> str:
    """What the reviewer is told happened, in words, after a decision."""
    facts = {"no": refund.out_refund_no, "amount": refund.amount.format(),
             "gateway": gateway_name(refund.payment.gateway), "status": refund.get_status_display()}
    if decision == "approve" and refund.status == RefundStatus.REQUESTED:
        return str(_("Your approval of refund %(no)s (%(amount)s) is recorded: %(approvals)s.")) % {
            **facts, "approvals": approvals_text(refund, refund.approvals.count())}
    if decision == "approve" and refund.status == RefundStatus.SUCCEEDED:
        return str(_("Refund %(no)s of %(amount)s approved and refunded through %(gateway)s.")) % facts
    if decision == "approve" and refund.status in (RefundStatus.FAILED, RefundStatus.ABNORMAL):
        return str(_("Refund %(no)s of %(amount)s approved, but %(gateway)s did not refund it: %(status)s. "
                     "It is listed under “needs attention”.")) % facts
    if decision == "approve":
        return str(_("Refund %(no)s of %(amount)s approved: %(gateway)s is refunding it.")) % facts
    if decision == "reject":
        return str(_("Refund %(no)s of %(amount)s rejected; the shopper is emailed your note.")) % facts
    if decision == "retry":
        return str(_("Refund %(no)s of %(amount)s sent to %(gateway)s again: %(status)s.")) % facts
    return str(_("Refund %(no)s of %(amount)s settled: %(status)s.")) % facts


@admin.register(InvariantViolation)
class InvariantViolationAdmin(admin.ModelAdmin):
    list_display = ("kind", "subject", "detail", "first_seen_at", "last_seen_at", "resolved_at")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("subject",)
    readonly_fields = ("kind", "subject", "detail", "first_seen_at", "last_seen_at", "resolved_at")

    def has_add_permission(self, request) -> bool:
        return False
