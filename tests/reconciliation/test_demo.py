"""`manage.py demo_reconciliation`: yesterday reconciled with one of each discrepancy kind, once."""
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from payments.gateways.base import BEIJING
from reconciliation.models import Discrepancy, Statement, StatementStatus
from shop.demo import demo_setup

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_demo_reconciles_yesterday_with_every_discrepancy_kind_once(shop_sandbox, capsys):
    demo_setup()
    # A real time scale: Alipay's bill link lives 30 s of it.
    shop_sandbox.control("POST", "settings", {"time_scale": 1.0})
    yesterday = datetime.now(BEIJING).date() - timedelta(days=1)

    call_command("demo_reconciliation", "--sandbox-url", shop_sandbox.base_url, "--force")

    for code in ("alipay", "wechatpay"):
        statement = Statement.objects.get(gateway=code, day=yesterday)
        assert statement.status == StatementStatus.MATCHED
        kinds = set(statement.discrepancies.values_list("kind", "status"))
        expected = {("missing_here", "open"), ("missing_here", "healed"), ("missing_at_gateway", "open"),
                    ("amount_mismatch", "open"), ("duplicate", "open"), ("status_mismatch", "healed")}
        if code == "wechatpay":
            expected.add(("currency_mismatch", "open"))
        assert kinds == expected, (code, kinds)
    assert "reconciliation demo for" in capsys.readouterr().out

    before = Discrepancy.objects.count()
    call_command("demo_reconciliation", "--sandbox-url", shop_sandbox.base_url, "--force")
    assert Discrepancy.objects.count() == before
    assert "already reconciled" in capsys.readouterr().out


def test_the_demo_refuses_to_run_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("demo_reconciliation")
