"""`manage.py demo_reconciliation [--sandbox-url URL] [--force]`: a reconciled yesterday for the demo finance user."""
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reconciliation.demo import reconciliation_demo


class Command(BaseCommand):
    help = (
        "Pay a few demo orders through the sandbox gateway on yesterday's date, put one of each discrepancy kind "
        "into its bills (through /_control/), and reconcile yesterday for Alipay and WeChat Pay. Needs the sandbox "
        "running (make run starts it) and manage.py demo_setup done; a day already seeded is left alone. Refuses "
        "to run with DEBUG off unless --force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sandbox-url", default="", help="the sandbox gateway (default: SANDBOX_URL)")
        parser.add_argument("--force", action="store_true", help="run even with DEBUG off")
        parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the sandbox to answer")
        parser.add_argument("--gateways", default="alipay,wechatpay", help="comma list (default: alipay,wechatpay)")

    def handle(self, *args: Any, sandbox_url: str, force: bool, wait: float, gateways: str, **options: Any) -> None:
        if not settings.DEBUG and not force:
            raise CommandError("demo_reconciliation makes demo payments: it runs with DEBUG on, or with --force")
        try:
            seeded = reconciliation_demo(sandbox_url=sandbox_url or settings.SANDBOX_URL, wait=wait,
                                         gateways=tuple(code.strip() for code in gateways.split(",") if code.strip()))
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"reconciliation demo for {seeded.day.isoformat()}: {seeded}")
        self.stdout.write("Sign in as finance (finance-demo-1) and open /finance/reconciliation/")
