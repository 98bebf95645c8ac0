"""Refund.submitted_at: when the refund was first sent under its current
number, resent unchanged on every retry (UnionPay knows a refund by orderId
+ txnTime). Refunds sent before take their creation time, to the second
(their gateways, Alipay and WeChat Pay, never read it); set-based."""
from django.db import migrations, models
from django.db.models.functions import Trunc


def submitted_at_for_refunds_sent(apps, schema_editor):
    Refund = apps.get_model("refunds", "Refund")
    Refund.objects.filter(submit_count__gt=0).update(submitted_at=Trunc("created_at", "second"))


class Migration(migrations.Migration):
    dependencies = [
        ("refunds", "0002_refund_gateway_reason"),
    ]

    operations = [
        migrations.AddField(
            model_name="refund",
            name="submitted_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="submitted to the gateway"),
        ),
        migrations.RunPython(submitted_at_for_refunds_sent, migrations.RunPython.noop),
    ]
