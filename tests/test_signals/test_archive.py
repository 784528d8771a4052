"""archive_signals and restore_signals: what moves, what stays, and the safety of each batch."""

import json
import signal
import subprocess
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connections, models

from signalhub.locks import command_lock
from signals.models import Signal
from signals.operations import archive
from sync.models import Delivery, DeliveryAttempt, Destination
from sync.outbox import enqueue_deliveries
from tests.support import manage, snapshot, store_signals, utc

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "archive"])

OLD = utc(2024, 1, 10)
RECENT = utc(2026, 11, 1)
CUTOFF = utc(2025, 1, 1)


def run(command, *args):
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue()


def counts():
    return (Signal._base_manager.using("default").count(), Signal._base_manager.using("archive").count())


def test_cutoff_counts_calendar_months_back_from_midnight_utc():
    assert archive.archive_cutoff(months=1, now=utc(2026, 3, 31, 23, 30)) == utc(2026, 2, 28)
    assert archive.archive_cutoff(months=12, now=utc(2026, 11, 28, 1, 0)) == utc(2025, 11, 28)
    assert archive.archive_cutoff(before="2025-06-01") == utc(2025, 6, 1)
    assert archive.archive_cutoff(before="2025-06-01T12:30:00") == utc(2025, 6, 1, 12, 30)


def test_dry_run_counts_and_changes_nothing():
    store_signals(7, created_at=OLD)
    store_signals(3, created_at=RECENT)
    before = snapshot("default")

    output = run("archive_signals", "--before", "2025-01-01", "--dry-run")

    assert "dry run, nothing changed: 7 signals would move" in output
    assert snapshot("default") == before
    assert counts() == (10, 0)


def test_archive_moves_only_older_signals_with_their_ids_and_values():
    store_signals(25, created_at=OLD, symbol="MSFT")
    store_signals(4, created_at=RECENT)
    originals = snapshot("default")

    output = run("archive_signals", "--before", "2025-01-01", "--batch-size", "10")

    assert "moved 25 signals" in output and "in 3 batches" in output
    assert counts() == (4, 25)
    archived = snapshot("archive")
    assert {key: originals[key] for key in archived} == archived  # same pk, every column equal
    assert {row[2] for row in archived.values()} == {"MSFT"}  # the symbol column
    assert set(snapshot("default")) | set(archived) == set(originals)


def test_json_summary_and_vacuum_unless_disabled():
    store_signals(3, created_at=OLD)
    result = json.loads(run("archive_signals", "--before", "2025-01-01", "--json"))
    assert result["moved"] == 3
    assert result["vacuum"] in ("VACUUM", "VACUUM ANALYZE", "incremental vacuum")

    store_signals(2, created_at=OLD)
    result = json.loads(run("archive_signals", "--before", "2025-01-01", "--json", "--no-vacuum"))
    assert result["moved"] == 2 and result["vacuum"] == "skipped"


def test_rows_already_copied_by_an_interrupted_run_are_verified_and_deleted_from_main():
    store_signals(6, created_at=OLD)
    originals = snapshot("default")
    # The state a run killed between the archive commit and the main commit leaves behind.
    table = archive._Table(Signal, same_engine=False)
    table.insert("archive", list(originals.values())[:4])
    assert counts() == (6, 4)

    result = archive.archive_signals(cutoff=CUTOFF)

    assert counts() == (0, 6)
    assert result.moved == 6 and result.already_in_target == 4 and result.refreshed_in_target == 0
    assert snapshot("archive") == originals


def test_a_stale_copy_in_the_archive_is_refreshed_from_main():
    [signal] = store_signals(1, created_at=OLD)
    archive._Table(Signal, same_engine=False).insert("archive", list(snapshot("default").values()))
    signal.close(120.0)  # the lifecycle moved on after the interrupted copy
    current = snapshot("default")

    result = archive.archive_signals(cutoff=CUTOFF)

    assert result.refreshed_in_target == 1
    assert snapshot("archive") == current
    assert Signal._base_manager.using("archive").get().outcome == "win"


def test_restore_round_trip_by_symbol_ids_and_time():
    store_signals(5, created_at=OLD, symbol="AAPL")
    store_signals(5, created_at=OLD + timedelta(days=30), symbol="TSLA")
    originals = snapshot("default")
    archive.archive_signals(cutoff=CUTOFF)
    assert counts() == (0, 10)

    output = run("restore_signals", "--symbol", "TSLA")
    assert "moved 5 signals" in output and counts() == (5, 5)

    some_id = sorted(snapshot("archive"))[0]
    run("restore_signals", "--ids", some_id)
    assert some_id in snapshot("default") and counts() == (6, 4)

    run("restore_signals", "--since", "2024-01-01", "--until", "2024-02-01")
    assert counts() == (10, 0)
    assert snapshot("default") == originals


def test_restore_needs_a_selection():
    with pytest.raises(CommandError) as error:
        run("restore_signals")
    assert error.value.returncode == 2 and "choose what to restore" in str(error.value)


def test_a_signal_id_already_archived_under_another_row_stays_in_main_and_fails_the_run():
    [kept] = store_signals(1, created_at=OLD)
    store_signals(2, created_at=OLD)
    twin = Signal._base_manager.using("archive").create(
        pk=kept.pk + 1000, **{f.attname: getattr(kept, f.attname) for f in Signal._meta.concrete_fields if not f.primary_key})

    with pytest.raises(CommandError) as error:
        run("archive_signals", "--before", "2025-01-01")

    assert error.value.returncode == 1 and "already in archive" in str(error.value)
    assert list(Signal._base_manager.using("default").values_list("signal_id", flat=True)) == [kept.signal_id]
    assert Signal._base_manager.using("archive").filter(signal_id=kept.signal_id).get().pk == twin.pk
    assert counts() == (1, 3)


def test_a_second_run_while_one_holds_the_lock_exits_3_and_moves_nothing():
    store_signals(2, created_at=OLD)
    with command_lock("archive_signals"):
        with pytest.raises(CommandError) as error:
            run("archive_signals", "--before", "2025-01-01")
    assert error.value.returncode == 3 and "in progress" in str(error.value)
    assert counts() == (2, 0)
    run("archive_signals", "--before", "2025-01-01")  # released afterwards
    assert counts() == (0, 2)


def test_a_killed_lock_holder_does_not_block_the_next_run():
    store_signals(2, created_at=OLD)
    holder = manage("shell", "-c", HOLD_LOCK, stdout=subprocess.PIPE, text=True)
    try:
        assert any(line.strip() == "held" for line in holder.stdout), "the holder never took the lock"
        with pytest.raises(CommandError) as error:
            run("archive_signals", "--before", "2025-01-01")
        assert error.value.returncode == 3 and counts() == (2, 0)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    run("archive_signals", "--before", "2025-01-01")
    assert counts() == (0, 2)


HOLD_LOCK = (
    "import time\n"
    "from signalhub.locks import command_lock\n"
    "with command_lock('archive_signals'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(120)\n"
)


def _deliver(signals, state, **fields):
    """Give each signal its Delivery in ``state`` (and, once attempted, two attempts); return the deliveries."""
    enqueue_deliveries([signal.signal_id for signal in signals])
    Delivery.objects.filter(signal__in=signals).update(state=state, **fields)
    deliveries = list(Delivery.objects.filter(signal__in=signals).order_by("pk"))
    for delivery in deliveries:
        for status_code in (503, 200):
            DeliveryAttempt.objects.create(delivery=delivery, started_at=OLD, finished_at=OLD, duration_ms=12,
                                           status_code=status_code, error="busy" if status_code == 503 else "")
    return deliveries


def test_undelivered_signals_stay_in_main_unless_include_undelivered():
    pending, retrying, sending, delivered, dead = (store_signals(1, created_at=OLD)[0] for _ in range(5))
    [legacy] = store_signals(1, created_at=OLD)  # stored before deliveries existed: nothing to wait for
    _deliver([pending], Delivery.State.PENDING)
    _deliver([retrying], Delivery.State.RETRYING)
    _deliver([sending], Delivery.State.SENDING)
    _deliver([delivered], Delivery.State.DELIVERED, delivered_at=OLD)
    _deliver([dead], Delivery.State.DEAD)
    selection = Signal._base_manager.using("default").filter(created_at__lt=CUTOFF)
    assert set(archive.keep_undelivered_in_main(selection).values_list("pk", flat=True)) == {
        delivered.pk, dead.pk, legacy.pk}

    output = run("archive_signals", "--before", "2025-01-01")

    assert "moved 3 signals" in output
    assert set(Signal.objects.values_list("pk", flat=True)) == {pending.pk, retrying.pk, sending.pk}
    assert set(Delivery.objects.values_list("state", flat=True)) == {"pending", "retrying", "sending"}

    output = run("archive_signals", "--before", "2025-01-01", "--include-undelivered")

    assert "moved 3 signals" in output and counts() == (0, 6)
    assert Delivery.objects.using("archive").count() == 5 and not Delivery.objects.exists()


def test_deliveries_and_attempts_move_with_their_signal_and_come_back_on_restore():
    assert [model for model, _ in archive.related_links()] == [Delivery, DeliveryAttempt]
    alpine = Destination.objects.alpine()
    signals = store_signals(3, created_at=OLD)
    _deliver(signals[:2], Delivery.State.DELIVERED, delivered_at=OLD, alpine_signal_id="A-1")
    test_attempt = DeliveryAttempt.objects.create(  # test_alpine_sync's attempt: belongs to no signal
        delivery=None, trigger="test", started_at=OLD, finished_at=OLD, duration_ms=5, status_code=200)
    deliveries = list(Delivery.objects.order_by("pk").values_list())
    attempts = list(DeliveryAttempt.objects.exclude(pk=test_attempt.pk).order_by("pk").values_list())
    destination = list(Destination.objects.values_list())

    result = archive.archive_signals(cutoff=CUTOFF, batch_size=2)

    assert result.moved == 3
    assert result.related == {"sync.Delivery": 2, "sync.DeliveryAttempt": 4}
    assert not Delivery.objects.exists()
    assert list(DeliveryAttempt.objects.values_list("pk", flat=True)) == [test_attempt.pk]
    # Same ids, every column equal.
    assert list(Delivery.objects.using("archive").order_by("pk").values_list()) == deliveries
    assert list(DeliveryAttempt.objects.using("archive").order_by("pk").values_list()) == attempts
    # No delivery points to the destination: it stays in main as it was, and is not moved.
    assert list(Destination.objects.values_list()) == destination and destination[0][0] == alpine.pk
    assert not Destination.objects.using("archive").exists()

    archive.restore_signals(since=utc(2000, 1, 1))

    assert counts() == (3, 0)
    assert list(Delivery.objects.order_by("pk").values_list()) == deliveries
    assert list(DeliveryAttempt.objects.exclude(pk=test_attempt.pk).order_by("pk").values_list()) == attempts
    assert not Delivery.objects.using("archive").exists() and not DeliveryAttempt.objects.using("archive").exists()
    assert list(Destination.objects.values_list()) == destination


@pytest.fixture
def tampering_archive():
    """Make the archive alter every row of a table written to it: a copy that silently differs (a driver or disk fault)."""
    connection = connections["archive"]
    made = []

    def tamper(table, column):
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute(f"CREATE TRIGGER tamper_{table} AFTER INSERT ON {table} BEGIN "
                               f"UPDATE {table} SET {column} = 'tampered' WHERE id = NEW.id; END")
            else:
                cursor.execute(f"CREATE FUNCTION tamper_{table}() RETURNS trigger LANGUAGE plpgsql AS "
                               f"$$ BEGIN NEW.{column} := 'tampered'; RETURN NEW; END $$")
                cursor.execute(f"CREATE TRIGGER tamper_{table} BEFORE INSERT ON {table} "
                               f"FOR EACH ROW EXECUTE FUNCTION tamper_{table}()")
        made.append(table)

    yield tamper
    with connection.cursor() as cursor:
        for table in made:
            if connection.vendor == "sqlite":
                cursor.execute(f"DROP TRIGGER tamper_{table}")
            else:
                cursor.execute(f"DROP TRIGGER tamper_{table} ON {table}")
                cursor.execute(f"DROP FUNCTION tamper_{table}()")


@pytest.mark.parametrize("table, column", [("signals_signal", "regime"), ("sync_delivery", "last_error")])
def test_a_failed_verification_deletes_nothing_from_main(tampering_archive, table, column):
    signals = store_signals(3, created_at=OLD)
    _deliver(signals, Delivery.State.DELIVERED, delivered_at=OLD)
    originals = snapshot("default")
    deliveries = list(Delivery.objects.order_by("pk").values_list())
    tampering_archive(table, column)

    with pytest.raises(CommandError) as error:
        run("archive_signals", "--before", "2025-01-01")

    assert error.value.returncode == 1 and "differ from the source" in str(error.value)
    assert snapshot("default") == originals
    assert list(Delivery.objects.order_by("pk").values_list()) == deliveries


# Related rows: found through the model meta, moved parents first, deleted children first ---------

@pytest.fixture
def delivery_like_models(transactional_db, django_db_blocker):
    """Temporary models shaped like the sync app's Destination, Delivery and DeliveryAttempt, in both databases."""

    class ProbeDestination(models.Model):
        name = models.CharField(max_length=20)

        class Meta:
            app_label = "signals"

    class ProbeDelivery(models.Model):
        signal = models.OneToOneField(Signal, on_delete=models.CASCADE, related_name="probe_delivery")
        destination = models.ForeignKey(ProbeDestination, on_delete=models.PROTECT)
        state = models.CharField(max_length=20, default="delivered")
        delivered_at = models.DateTimeField(null=True)

        class Meta:
            app_label = "signals"

    class ProbeAttempt(models.Model):
        delivery = models.ForeignKey(ProbeDelivery, on_delete=models.CASCADE, related_name="attempts")
        status_code = models.IntegerField()
        response = models.JSONField(default=dict)

        class Meta:
            app_label = "signals"

    for alias in ("default", "archive"):
        with connections[alias].schema_editor() as editor:
            editor.create_model(ProbeDestination)
            editor.create_model(ProbeDelivery)
            editor.create_model(ProbeAttempt)
    yield ProbeDestination, ProbeDelivery, ProbeAttempt
    for alias in ("default", "archive"):
        with connections[alias].schema_editor() as editor:
            editor.delete_model(ProbeAttempt)
            editor.delete_model(ProbeDelivery)
            editor.delete_model(ProbeDestination)
    for model in (ProbeAttempt, ProbeDelivery, ProbeDestination):
        del apps.all_models["signals"][model._meta.model_name]
    apps.clear_cache()


def test_rows_pointed_to_are_copied_not_moved_and_main_stays_authoritative(delivery_like_models):
    ProbeDestination, ProbeDelivery, ProbeAttempt = delivery_like_models
    # The probe models hang off Signal beside the sync app's: each moves by the same walk.
    links = [model for model, _ in archive.related_links()]
    assert set(links) == {Delivery, DeliveryAttempt, ProbeDelivery, ProbeAttempt}
    assert links.index(ProbeDelivery) < links.index(ProbeAttempt) and links.index(Delivery) < links.index(DeliveryAttempt)
    alpine = ProbeDestination.objects.create(name="alpine")
    signals = store_signals(3, created_at=OLD)
    for stored in signals[:2]:
        delivery = ProbeDelivery.objects.create(signal=stored, destination=alpine, delivered_at=OLD)
        ProbeAttempt.objects.create(delivery=delivery, status_code=503, response={"error": "busy"})
        ProbeAttempt.objects.create(delivery=delivery, status_code=200, response={"ok": True})
    deliveries = list(ProbeDelivery.objects.order_by("pk").values_list())
    attempts = list(ProbeAttempt.objects.order_by("pk").values_list())

    result = archive.archive_signals(cutoff=CUTOFF, batch_size=2)

    assert result.moved == 3
    assert result.related == {"signals.ProbeDelivery": 2, "signals.ProbeAttempt": 4, "sync.Delivery": 0,
                              "sync.DeliveryAttempt": 0}
    assert not ProbeDelivery.objects.exists() and not ProbeAttempt.objects.exists()
    assert list(ProbeDelivery.objects.using("archive").order_by("pk").values_list()) == deliveries
    assert list(ProbeAttempt.objects.using("archive").order_by("pk").values_list()) == attempts
    # The destination the deliveries point to is copied, not moved.
    assert list(ProbeDestination.objects.values_list()) == [(alpine.pk, "alpine")]
    assert list(ProbeDestination.objects.using("archive").values_list()) == [(alpine.pk, "alpine")]

    ProbeDestination.objects.filter(pk=alpine.pk).update(name="alpine-eu")  # main's copy stays authoritative
    archive.restore_signals(since=utc(2000, 1, 1))
    assert list(ProbeDestination.objects.values_list()) == [(alpine.pk, "alpine-eu")]
    assert list(ProbeDelivery.objects.order_by("pk").values_list()) == deliveries
    assert list(ProbeAttempt.objects.order_by("pk").values_list()) == attempts
    assert not ProbeAttempt.objects.using("archive").exists()
