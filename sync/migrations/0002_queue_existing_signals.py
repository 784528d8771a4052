"""Queue a pending delivery for every signal stored before the sync app existed."""

from django.db import migrations
from django.utils import timezone


def queue_existing(apps, schema_editor):
    from sync.outbox import insert_missing_sql

    Delivery = apps.get_model("sync", "Delivery")
    Signal = apps.get_model("signals", "Signal")
    now = timezone.now()
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(insert_missing_sql(Delivery._meta.db_table, Signal._meta.db_table), [now, now, now])


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0001_deliveries_attempts_destination"),
        ("signals", "0001_initial"),
    ]

    operations = [
        # Reversing leaves the rows (the table goes with 0001's reversal).
        migrations.RunPython(queue_existing, migrations.RunPython.noop),
    ]
