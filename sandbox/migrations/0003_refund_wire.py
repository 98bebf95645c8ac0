"""Refund.wire: provider-specific request details (UnionPay's txnTime)."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sandbox", "0002_wechatpay"),
    ]

    operations = [
        migrations.AddField(
            model_name="refund",
            name="wire",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
