"""Payment.requested_at: the attempt's stable request time, sent to gateways
that know a trade by number and time (UnionPay txnTime).

Existing attempts take their creation time, to the second; set-based."""
from django.db import migrations, models
from django.db.models.functions import Trunc


def requested_at_from_created_at(apps, schema_editor):
    Payment = apps.get_model("payments", "Payment")
    Payment.objects.update(requested_at=Trunc("created_at", "second"))


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="payment",
            name="requested_at",
            field=models.DateTimeField(null=True, verbose_name="request time"),
        ),
        migrations.RunPython(requested_at_from_created_at, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="payment",
            name="requested_at",
            field=models.DateTimeField(verbose_name="request time"),
        ),
    ]
