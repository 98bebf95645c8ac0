"""Drop every stored notification header the protocols do not need.

Rows stored before the inbox kept only its protocol headers (payments/inbound.py)
hold whatever the sender posted, Cookie and Authorization included. This
keeps the headers any adapter reads (docs/gateways-wechatpay.md §4.1 for
WeChat Pay; Alipay and UnionPay sign the body and need only its content
type). The list is frozen here on purpose: a migration must not change
meaning when the adapters do.
"""
from django.db import connection as default_connection
from django.db import migrations

KEPT = ("content-type", "wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature", "wechatpay-serial",
        "wechatpay-signature-type", "request-id")


def keep_protocol_headers_only(apps, schema_editor):
    connection = schema_editor.connection if schema_editor is not None else default_connection
    Notification = apps.get_model("payments", "GatewayNotification")
    table = Notification._meta.db_table
    if connection.vendor == "postgresql":
        # One set-based UPDATE: rebuild each headers object from its kept keys.
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE {table} SET headers = COALESCE(
                        (SELECT jsonb_object_agg(key, value) FROM jsonb_each(headers)
                          WHERE lower(key) = ANY(%s)), '{{}}'::jsonb)
                     WHERE EXISTS (SELECT 1 FROM jsonb_each(headers) WHERE NOT lower(key) = ANY(%s))""",
                [list(KEPT), list(KEPT)],
            )
        return
    # SQLite (the embedded default): small tables, batches of rows.
    changed = []
    for row in Notification.objects.only("pk", "headers").iterator(chunk_size=500):
        kept = {name: value for name, value in (row.headers or {}).items() if name.lower() in KEPT}
        if kept != row.headers:
            row.headers = kept
            changed.append(row)
    Notification.objects.bulk_update(changed, ["headers"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("payments", "0002_payment_requested_at")]

    operations = [migrations.RunPython(keep_protocol_headers_only, migrations.RunPython.noop)]
