"""The finance pages under /finance/reconciliation/: read, decide (through the services), export.

Only staff with `reconciliation.view_reports` see them (others: 403, or the
sign-in page when signed out); deciding needs `decide_discrepancies` too,
and the services check it again.
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import date
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from payments.gateways.base import BEIJING
from reconciliation import charts, selectors
from reconciliation.exceptions import ReconciliationError
from reconciliation.forms import AcceptForm, DiscrepancyFilterForm, ResolveForm, SignOffForm
from reconciliation.models import (
    KIND_MEANINGS,
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    LineKind,
    Statement,
)
from reconciliation.permissions import can_decide, can_view
from reconciliation.services import discrepancy_accept, discrepancy_resolve, statement_sign_off
from shop.money import Money

View = Callable[..., HttpResponse | StreamingHttpResponse]


def finance_page(view: View) -> View:
    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse | StreamingHttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_view(request.user):
            raise PermissionDenied("finance only")
        return view(request, *args, **kwargs)

    return guarded


def _context(request: HttpRequest, **values: Any) -> dict[str, Any]:
    return {"can_decide": can_decide(request.user), "kind_meanings": KIND_MEANINGS, **values}


@finance_page
def overview(request: HttpRequest) -> HttpResponse:
    codes = selectors.gateway_codes()
    return render(request, "reconciliation/overview.html", _context(
        request,
        codes=codes,
        calendar=selectors.statement_calendar(codes=codes),
        net_chart=charts.net_chart(selectors.daily_net(codes=codes)),
        open_chart=charts.count_chart(selectors.open_over_time()),
        open_count=Discrepancy.objects.filter(status=DiscrepancyStatus.OPEN).count(),
    ))


@finance_page
def day_view(request: HttpRequest, gateway: str, day: date) -> HttpResponse:
    statement = get_object_or_404(Statement, gateway=gateway, day=day)
    currency = statement.currency
    totals = [
        selectors.Totals(_("Payments"), statement.bill_payment_count, statement.bill_payment_minor,
                         statement.local_payment_count, statement.local_payment_minor),
        selectors.Totals(_("Refunds"), statement.bill_refund_count, statement.bill_refund_minor,
                         statement.local_refund_count, statement.local_refund_minor),
    ]
    open_count = statement.discrepancies.filter(status=DiscrepancyStatus.OPEN).count()
    return render(request, "reconciliation/day.html", _context(
        request,
        statement=statement,
        currency=currency,
        totals=totals,
        fees=Money(statement.bill_fee_minor, currency),
        bill_net=statement.bill_net,
        local_net=statement.local_net,
        breakdown=selectors.day_breakdown(statement),
        discrepancies=[(item, selectors.days_open(item)) for item in statement.discrepancies.select_related(
            "order", "payment", "refund", "decided_by").order_by("status", "kind", "reference")],
        runs=statement.runs.select_related("actor_user").order_by("-created_at")[:20],
        open_count=open_count,
        can_sign_off=can_decide(request.user) and statement.is_finished and not open_count
        and statement.signed_off_at is None,
        sign_off_form=SignOffForm(),
    ))


@finance_page
@require_POST
def sign_off_view(request: HttpRequest, gateway: str, day: date) -> HttpResponse:
    statement = get_object_or_404(Statement, gateway=gateway, day=day)
    form = SignOffForm(request.POST)
    if form.is_valid():
        try:
            statement_sign_off(statement_id=statement.pk, user=request.user, note=form.cleaned_data["note"])
        except ReconciliationError as exc:
            messages.error(request, exc.user_message)
        else:
            messages.success(request, _("%(gateway)s %(day)s is signed off.") % {"gateway": gateway,
                                                                                 "day": day.isoformat()})
    return redirect("reconciliation:day", gateway=gateway, day=day)


def _filters(request: HttpRequest, codes: list[str]) -> tuple[DiscrepancyFilterForm, selectors.DiscrepancyFilter]:
    data = request.GET.copy()
    if "status" not in data:
        # By default, what waits for someone.
        data["status"] = DiscrepancyStatus.OPEN
    form = DiscrepancyFilterForm(data, gateways=codes)
    filters = selectors.DiscrepancyFilter()
    if form.is_valid():
        filters = selectors.DiscrepancyFilter(
            gateway=form.cleaned_data["gateway"], kind=form.cleaned_data["kind"],
            status=form.cleaned_data["status"], older_than_days=form.cleaned_data["older_than_days"],
            day=form.cleaned_data["day"])
    return form, filters


@finance_page
def discrepancies(request: HttpRequest) -> HttpResponse:
    codes = selectors.gateway_codes()
    form, filters = _filters(request, codes)
    page = Paginator(selectors.discrepancy_list(filters), 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "reconciliation/discrepancies.html", _context(
        request, form=form, page=page, rows=[(item, selectors.days_open(item)) for item in page],
        query=query.urlencode(), csv_url=f"{reverse('reconciliation:discrepancies-csv')}?{query.urlencode()}",
    ))


@finance_page
def discrepancy(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(Discrepancy.objects.select_related("statement", "order", "payment", "refund",
                                                                "decided_by"), pk=pk)
    return render(request, "reconciliation/discrepancy.html", _context(
        request, item=item, days=selectors.days_open(item), meaning=KIND_MEANINGS[DiscrepancyKind(item.kind)],
        events=item.events.select_related("actor_user").order_by("created_at", "pk"),
        resolve_form=ResolveForm(prefix="resolve"), accept_form=AcceptForm(prefix="accept"),
    ))


def _decide(request: HttpRequest, pk: int, *, form_class: type, prefix: str, service: Callable[..., Discrepancy],
            done: str) -> HttpResponse:
    item = get_object_or_404(Discrepancy, pk=pk)
    form = form_class(request.POST, prefix=prefix)
    if not form.is_valid():
        messages.error(request, _("Say how the discrepancy was resolved."))
        return redirect("reconciliation:discrepancy", pk=pk)
    try:
        service(discrepancy_id=item.pk, user=request.user, note=form.cleaned_data["note"])
    except ReconciliationError as exc:
        messages.error(request, exc.user_message)
        return redirect("reconciliation:discrepancy", pk=pk)
    messages.success(request, done % {"reference": item.reference})
    # Back to where finance decided it (the day or the list), never elsewhere.
    target = request.POST.get("next", "")
    if target.startswith("/finance/reconciliation/") and "//" not in target:
        return redirect(target)
    return redirect("reconciliation:discrepancy", pk=pk)


@finance_page
@require_POST
def discrepancy_resolve_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, form_class=ResolveForm, prefix="resolve", service=discrepancy_resolve,
                   done=_("%(reference)s is resolved."))


@finance_page
@require_POST
def discrepancy_accept_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, form_class=AcceptForm, prefix="accept", service=discrepancy_accept,
                   done=_("%(reference)s is accepted."))


# -- CSV exports: streamed, UTF-8 with a BOM so Excel opens them as such -------------------


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_response(rows: Iterator[list[Any]], filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def content() -> Iterator[str]:
        yield "\ufeff"
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(content(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _yuan(minor: int | None, currency: str) -> str:
    return "" if minor is None else Money(int(minor), currency or "CNY").format()


def _beijing(moment: Any) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


@finance_page
def lines_csv(request: HttpRequest, gateway: str, day: date) -> StreamingHttpResponse:
    statement = get_object_or_404(Statement, gateway=gateway, day=day)
    results = selectors.line_results(statement)
    repeated = statement.repeated
    matched = _("Matched")
    kinds = dict(LineKind.choices)

    def rows() -> Iterator[list[Any]]:
        yield [_("Line"), _("Kind"), _("Merchant trade number"), _("Refund number"), _("Gateway trade number"),
               _("Gateway refund id"), _("Amount"), _("Fee"), _("Currency"), _("Time (Beijing)"),
               _("Status in the bill"), _("Result")]
        for line_no, kind, out_trade_no, out_refund_no, trade_no, refund_id, amount, fee, currency, when, status \
                in selectors.statement_lines(statement):
            reference = out_refund_no if kind == LineKind.REFUND else out_trade_no
            result = results.get((kind, reference), "")
            if not result and f"{kind}:{reference}" in repeated:
                result = str(DiscrepancyKind.DUPLICATE.label)
            yield [line_no, kinds.get(kind, kind), out_trade_no, out_refund_no, trade_no, refund_id,
                   _yuan(amount, currency), _yuan(fee, currency), currency, _beijing(when), status, result or matched]

    return _csv_response(rows(), f"{gateway}-{day.isoformat()}-lines.csv")


@finance_page
def discrepancies_csv(request: HttpRequest) -> StreamingHttpResponse:
    _form, filters = _filters(request, selectors.gateway_codes())
    now = timezone.now()

    def rows() -> Iterator[list[Any]]:
        yield [_("Bill day"), _("Gateway"), _("Kind"), _("State"), _("Subject"), _("Reference"), _("Order"),
               _("Amount in the bill"), _("Our amount"), _("Currency in the bill"), _("Our currency"),
               _("Our status"), _("Lines in the bill"), _("Found"), _("Open since"), _("Days open"),
               _("Decided by"), _("Decided"), _("Note"), _("Healing")]
        for item in selectors.discrepancy_list(filters).iterator(chunk_size=2000):
            days = selectors.days_open(item, now)
            yield [item.statement.day.isoformat(), item.statement.gateway, item.get_kind_display(),
                   item.get_status_display(), item.get_subject_display(), item.reference,
                   item.order.order_no if item.order else "",
                   _yuan(item.bill_amount_minor, item.bill_currency), _yuan(item.local_amount_minor,
                                                                            item.local_currency),
                   item.bill_currency, item.local_currency, item.local_status, item.occurrences,
                   _beijing(item.created_at), _beijing(item.opened_at), "" if days is None else days,
                   item.decided_by.get_username() if item.decided_by else "", _beijing(item.decided_at),
                   item.note, item.get_heal_action_display() if item.heal_action else ""]

    return _csv_response(rows(), f"discrepancies-{timezone.now().astimezone(BEIJING):%Y%m%d}.csv")

