"""`manage.py reconcile --gateway alipay --day 2026-11-30 [--force]`: reconcile one gateway's bill day now."""
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from reconciliation.exceptions import ReconciliationError
from reconciliation.services import last_bill_day, statement_gateway, statement_reconcile
from shop.actors import Actor


class Command(BaseCommand):
    help = (
        "Reconcile one gateway's bill day: download the bill (unless it is already here), match it against "
        "our payments and refunds, record the discrepancies, heal what the gateway can settle. A day already "
        "reconciled is left alone unless --force, which downloads the bill anew."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--gateway", required=True, help="gateway code, e.g. alipay or wechatpay")
        parser.add_argument("--day", type=date.fromisoformat,
                            help="bill day as YYYY-MM-DD (default: the gateway's last finished bill day)")
        parser.add_argument("--force", action="store_true", help="reconcile again even if already reconciled")

    def handle(self, *args: Any, gateway: str, day: date | None, force: bool, **options: Any) -> None:
        try:
            day = day or last_bill_day(statement_gateway(gateway), timezone.now())
            run = statement_reconcile(gateway_code=gateway, day=day, actor=Actor.system("manage.py reconcile"),
                                      force=force)
        except ReconciliationError as exc:
            raise CommandError(f"{exc.user_message} ({exc})") from exc
        statement = run.statement
        self.stdout.write(
            f"{gateway} {day.isoformat()}: {run.get_outcome_display()} in {run.duration_ms} ms; status "
            f"{statement.status}, {run.line_count} lines, {run.matched_count} matched, {run.found} discrepancies "
            f"({run.opened} newly open, {run.cleared} cleared, {run.carried} carried, {run.healed} healed)"
            + (f"; {run.detail}" if run.detail else "")
        )
        if run.outcome == "unchanged" and not force:
            self.stdout.write("Already reconciled: use --force to download the bill again.")
