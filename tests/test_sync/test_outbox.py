import pytest
from django.db import connection, transaction

from sync.models import Delivery
from sync.outbox import enqueue_deliveries, enqueue_missing
from tests.factories import make_signal

pytestmark = pytest.mark.django_db


def test_enqueue_creates_one_pending_delivery_per_signal_once():
    signals = [make_signal() for _ in range(3)]
    ids = [s.signal_id for s in signals]
    assert enqueue_deliveries(ids + ids[:1]) == 3
    assert enqueue_deliveries(ids) == 0
    rows = Delivery.objects.filter(signal__in=signals)
    assert rows.count() == 3 and {row.state for row in rows} == {"pending"}


def test_enqueue_ignores_unknown_ids_and_empty_lists():
    assert enqueue_deliveries([]) == 0
    assert enqueue_deliveries(["no-such-signal"]) == 0
    assert not Delivery.objects.exists()


def test_enqueue_missing_backfills_signals_without_a_delivery():
    queued = make_signal()
    enqueue_deliveries([queued.signal_id])
    missing = [make_signal() for _ in range(2)]
    assert enqueue_missing() == 2
    assert set(Delivery.objects.values_list("signal_id", flat=True)) == {queued.pk, *(s.pk for s in missing)}
    assert enqueue_missing() == 0


def test_enqueue_large_lists_in_chunks():
    signals = [make_signal() for _ in range(1200)]
    assert enqueue_deliveries([s.signal_id for s in signals]) == 1200


def test_due_rows_are_served_by_the_partial_index():
    sql, params = Delivery.objects.due().order_by("next_attempt_at").values("pk")[:10].query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The test table is tiny; make the planner show whether it can use the index at all.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "delivery_due_idx" in plan
