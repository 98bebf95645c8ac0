from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from shop.demo import demo_setup


class Command(BaseCommand):
    help = "Create the demo catalogue and demo accounts (idempotent) and print the credentials."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off (never on a shop that takes real money).",
        )

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "demo_setup creates accounts with published passwords; "
                "it runs only with DEBUG on, or with --force."
            )
        accounts = demo_setup()
        self.stdout.write(self.style.SUCCESS("Demo catalogue and accounts are ready."))
        self.stdout.write("  role              username   password")
        for account in accounts:
            self.stdout.write(f"  {account.role:<17} {account.username:<10} {account.password}")
        self.stdout.write(
            "  (passwords are set when an account is first created; "
            "a changed password is left alone)"
        )
