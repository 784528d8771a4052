"""The outbox: queue a Delivery for every stored signal, inside the caller's transaction.

The write path calls enqueue_deliveries() in the same transaction as its
INSERT of the signals, so a signal is never stored without being queued.
Both functions are set-based (INSERT ... SELECT ... WHERE NOT EXISTS): a signal
that already has a delivery is left alone and nothing is sent over the network.
"""

import json
import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

# Keeps the IN list under SQLite's bound-parameter limit.
CHUNK = 500


def queue_sql(delivery_table, source):
    """Return the INSERT ... SELECT that queues a pending delivery for each row of ``source``.

    ``source`` is a FROM clause whose rows, aliased ``s``, carry the signal's
    primary key as ``s.id``. Three parameters: when it is due, queued, updated.
    """
    return (
        f'INSERT INTO "{delivery_table}" (signal_id, state, attempt_count, next_attempt_at, lease_owner, '
        f"last_error, error_class, alpine_signal_id, queued_at, updated_at) "
        f"SELECT s.id, 'pending', 0, %s, '', '', '', '', %s, %s FROM {source}"
    )


def insert_missing_sql(delivery_table, signal_table, where=""):
    """Return the INSERT ... SELECT that queues a pending delivery for each signal without one."""
    return queue_sql(delivery_table, f'"{signal_table}" s '
                     f'WHERE NOT EXISTS (SELECT 1 FROM "{delivery_table}" d WHERE d.signal_id = s.id){where}')


def _tables():
    from signals.models import Signal
    from sync.models import Delivery

    return Delivery._meta.db_table, Signal._meta.db_table


def enqueue_deliveries(signal_ids):
    """Queue a delivery for each of these signals (by signal_id) that has none; return how many were queued."""
    signal_ids = list(dict.fromkeys(signal_ids))
    if not signal_ids:
        return 0
    now = timezone.now()
    queued = 0
    with connection.cursor() as cursor:
        if connection.vendor in ("sqlite", "postgresql"):
            # One statement per batch, the ids as one parameter: a batch of
            # thousands is not split into statements of CHUNK ids.
            if connection.vendor == "sqlite":
                where, ids = " AND s.signal_id IN (SELECT value FROM json_each(%s))", json.dumps(signal_ids)
            else:
                where, ids = " AND s.signal_id = ANY(%s)", signal_ids
            cursor.execute(insert_missing_sql(*_tables(), where=where), [now, now, now, ids])
            queued = cursor.rowcount
        else:
            for start in range(0, len(signal_ids), CHUNK):
                chunk = signal_ids[start:start + CHUNK]
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(insert_missing_sql(*_tables(), where=f" AND s.signal_id IN ({marks})"),
                               [now, now, now, *chunk])
                queued += cursor.rowcount
    return queued_in_this_transaction(queued)


def enqueue_inserted_after(signal_pk):
    """Queue a delivery for each signal whose primary key is above ``signal_pk``; return how many.

    For a writer that has just inserted its batch inside a transaction that
    no other writer can enter (SQLite's IMMEDIATE transactions), passing the
    key just below the batch's first row: every row above it is one of its own.
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(insert_missing_sql(*_tables(), where=" AND s.id > %s"), [now, now, now, signal_pk])
        return queued_in_this_transaction(cursor.rowcount)


def queued_in_this_transaction(queued):
    """Note ``queued`` deliveries made in the current transaction (the push, if on) and return the count."""
    if queued and settings.SIGNALHUB_SYNC_PUSH:
        # Low latency: deliver right after the batch commits, not at the next pass.
        transaction.on_commit(push_delivery)
    return queued


def enqueue_missing():
    """Queue a delivery for every stored signal that has none (imports, rows from before the sync app)."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert_missing_sql(*_tables()), [now, now, now])
        queued = cursor.rowcount
    if queued:
        logger.info("queued %d signals that had no delivery", queued)
    return queued


def push_delivery():
    """Queue one delivery pass on the task cluster (the SIGNALHUB_SYNC_PUSH path)."""
    from django_q.tasks import async_task

    try:
        async_task("sync.tasks.deliver_now", group="sync-push", save=False)
    except Exception:
        # The scheduled pass delivers the rows anyway; a push is only a head start.
        logger.exception("could not queue a push delivery")
