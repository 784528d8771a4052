"""Queue a pending delivery for every signal stored before the sync app existed."""

from django.db import migrations
from django.utils import timezone

# Frozen here, as the delivery table stood after 0001: a migration never
# imports live code (sync.outbox may change with later schemas). The same SQL
# runs on SQLite and PostgreSQL. Three parameters: due, queued, updated.
QUEUE_MISSING_SQL = (
    'INSERT INTO "{delivery}" (signal_id, state, attempt_count, next_attempt_at, lease_owner, '
    "last_error, error_class, alpine_signal_id, queued_at, updated_at) "
    "SELECT s.id, 'pending', 0, %s, '', '', '', '', %s, %s FROM \"{signal}\" s "
    'WHERE NOT EXISTS (SELECT 1 FROM "{delivery}" d WHERE d.signal_id = s.id)'
)


def queue_existing(apps, schema_editor):
    Delivery = apps.get_model("sync", "Delivery")
    Signal = apps.get_model("signals", "Signal")
    now = timezone.now()
    sql = QUEUE_MISSING_SQL.format(delivery=Delivery._meta.db_table, signal=Signal._meta.db_table)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql, [now, now, now])


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0001_deliveries_attempts_destination"),
        ("signals", "0001_initial"),
    ]

    operations = [
        # Reversing leaves the rows (the table goes with 0001's reversal).
        migrations.RunPython(queue_existing, migrations.RunPython.noop),
    ]
