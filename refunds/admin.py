"""Customer service's refund desk: the queue, one-page review, decisions.

Every decision goes through refunds.services, which checks the dedicated
`refunds.review_refund` permission, records who decided and when, and keeps
the money invariants. Nothing here edits a refund's money or status directly.
"""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from payments.exceptions import GatewayError
from refunds.exceptions import RefundError
from refunds.models import InvariantViolation, Refund, RefundApproval, RefundEvent, RefundStatus
from refunds.permissions import REVIEW_PERMISSION
from refunds.services import refund_approve, refund_reject, refund_retry, refund_settle_abnormal
from refunds.services.stalled import stalled_q
from shop.admin_actions import ShopModelAdmin
from shop.money import Money


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


class GatewayFilter(admin.SimpleListFilter):
    title = _("gateway")
    parameter_name = "gateway"

    def lookups(self, request, model_admin):
        codes = Refund.objects.values_list("payment__gateway", flat=True).distinct().order_by("payment__gateway")
        return [(code, code) for code in codes]

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


@admin.register(Refund)
class RefundAdmin(ShopModelAdmin):
    list_display = ("out_refund_no", "order_link", "gateway", "amount_display", "reason", "status", "automatic",
                    "approvals_display", "created_at")
    list_filter = ("status", GatewayFilter, "created_at", "automatic", NeedsAttentionFilter)
    search_fields = ("order__order_no", "out_refund_no", "payment__out_trade_no")
    date_hierarchy = "created_at"
    list_select_related = ("order", "payment")
    inlines = [RefundApprovalInline, RefundEventInline]
    actions = ["approve_selected", "reject_selected", "retry_selected"]
    readonly_fields = [field.name for field in Refund._meta.fields if field.name != "application_token"]
    exclude = ("application_token",)
    change_form_template = "admin/refunds/refund/change_form.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

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

    @admin.display(description=_("gateway"), ordering="payment__gateway")
    def gateway(self, refund: Refund) -> str:
        return refund.payment.gateway

    @admin.display(description=_("amount"), ordering="amount_minor")
    def amount_display(self, refund: Refund) -> str:
        return refund.amount.format()

    @admin.display(description=_("approvals"))
    def approvals_display(self, refund: Refund) -> str:
        if refund.automatic:
            return "—"
        return f"{refund.approvals.count()}/{refund.approvals_required}"

    # -- one page with everything a reviewer needs ------------------------------

    @staticmethod
    def _refund_or_404(object_id: str, queryset=None) -> Refund:
        # A hand-typed or forged id ("abc", "1.5") is a 404, never a ValueError.
        if not str(object_id).isdigit():
            raise Http404(object_id)
        return get_object_or_404(queryset if queryset is not None else Refund.objects, pk=int(object_id))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        refund = self._refund_or_404(object_id, Refund.objects.select_related("order", "payment"))
        order = refund.order
        extra_context = {
            **(extra_context or {}),
            "refund": refund,
            "order": order,
            "lines": order.lines.all(),
            "payments": order.payments.all(),
            "other_refunds": order.refunds.exclude(pk=refund.pk),
            "can_review": request.user.has_perm(REVIEW_PERMISSION),
            "refundable": Money(refund.payment.amount_minor),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path("<path:object_id>/decide/", self.admin_site.admin_view(self.decide_view),
                 name="refunds_refund_decide"),
        ] + super().get_urls()

    def decide_view(self, request, object_id):
        """POST from the detail page: approve, reject (note required), retry, settle."""
        if request.method != "POST" or not request.user.has_perm(REVIEW_PERMISSION):
            raise PermissionDenied
        refund = self._refund_or_404(object_id)
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
        try:
            refund = calls[decision]()
        except (RefundError, GatewayError) as exc:
            self.message_user(request, exc.user_message, messages.ERROR)
        else:
            refund.refresh_from_db()
            self.message_user(request, _("%(no)s is now: %(status)s") % {
                "no": refund.out_refund_no, "status": refund.get_status_display()}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:refunds_refund_change", args=[refund.pk]))

    # -- list actions -------------------------------------------------------------

    def _each(self, request, queryset, call) -> None:
        for refund in queryset:
            try:
                refund = call(refund)
            except (RefundError, GatewayError) as exc:
                self.message_user(request, f"{refund.out_refund_no}: {exc.user_message}", messages.ERROR)
            else:
                refund.refresh_from_db()
                self.message_user(request, f"{refund.out_refund_no}: {refund.get_status_display()}")

    @admin.action(description=_("Approve the selected refunds"))
    def approve_selected(self, request, queryset):
        self._each(request, queryset, lambda r: refund_approve(refund_id=r.pk, reviewer=request.user))

    @admin.action(description=_("Reject the selected refunds (a note is required)"))
    def reject_selected(self, request, queryset):
        note = request.POST.get("note", "").strip()
        if request.POST.get("confirm") and note:
            self._each(request, queryset, lambda r: refund_reject(refund_id=r.pk, reviewer=request.user, note=note))
            return None
        if request.POST.get("confirm"):
            self.message_user(request, _("Say why the refunds are rejected."), messages.ERROR)
        return TemplateResponse(request, "admin/refunds/refund/reject_selected.html", {
            **self.admin_site.each_context(request),
            "refunds": queryset,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
            "title": _("Reject refunds"),
        })

    @admin.action(description=_("Retry the selected failed refunds"))
    def retry_selected(self, request, queryset):
        self._each(request, queryset, lambda r: refund_retry(refund_id=r.pk, staff=request.user))


@admin.register(InvariantViolation)
class InvariantViolationAdmin(admin.ModelAdmin):
    list_display = ("kind", "subject", "detail", "first_seen_at", "last_seen_at", "resolved_at")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("subject",)
    readonly_fields = ("kind", "subject", "detail", "first_seen_at", "last_seen_at", "resolved_at")

    def has_add_permission(self, request) -> bool:
        return False
