"""Several journal segments written at once: one connection each on PostgreSQL, one at a time on SQLite."""

import threading

import pytest
from django.db import OperationalError, connection, connections

import signals.writepath.flusher
import signals.writepath.ingest
import signals.writepath.recovery
from signals.ingest import flush_pending, log_signal
from signals.ledger.validation import clean_signal
from signals.models import Signal, SignalConflict
from signals.writepath import journal
from signals.writepath.recovery import replay_dead_segments
from signals.writepath.lanes import in_lanes, segment_writers
from sync.models import Delivery
from tests.factories import signal_data

pytestmark = pytest.mark.django_db(transaction=True)


def test_in_lanes_runs_items_side_by_side_each_once():
    both_running = threading.Barrier(2, timeout=10)
    done = []

    def work(item):
        if item < 2:
            both_running.wait()  # raises (BrokenBarrierError) unless the first two run at the same time
        done.append((item, threading.current_thread().name))

    in_lanes(work, range(6), lanes=2)
    assert sorted(item for item, _ in done) == list(range(6))
    assert len({name for _, name in done}) == 2


def test_in_lanes_with_one_lane_stays_in_this_thread():
    names = []
    in_lanes(lambda item: names.append(threading.current_thread().name), range(3), lanes=1)
    assert names == [threading.current_thread().name] * 3


def test_in_lanes_takes_no_item_after_a_failure_and_raises_it():
    failed = threading.Event()
    done = []

    def work(item):
        if item == 0:
            assert failed.wait(10)  # still busy when the other lane fails
        elif item == 1:
            failed.set()
            raise ValueError("item 1 cannot be written")
        done.append(item)

    with pytest.raises(ValueError, match="item 1"):
        in_lanes(work, range(10), lanes=2)
    assert done == [0]


def expected_lanes():
    return 2 if connection.vendor == "postgresql" else 1


def test_segment_writers_follow_the_backend(settings):
    settings.SIGNALHUB_FLUSH_WRITERS = 3
    assert segment_writers() == (3 if connection.vendor == "postgresql" else 1)


def spy_on_batches(monkeypatch, module):
    """Record which thread wrote each batch, and that thread's connection.

    Where two lanes are expected, each one's first batch waits for the other's:
    both are writing at the same time, however slowly the second thread starts.
    """
    seen = []
    real = module.write_journal_batch
    both_started = threading.Barrier(expected_lanes(), timeout=20)

    def spy(*args, **kwargs):
        name = threading.current_thread().name
        first = name not in {seen_name for seen_name, _ in seen}
        # This thread's own connection object, not the proxy every thread shares.
        seen.append((name, connections["default"]))
        if first:
            both_started.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "write_journal_batch", spy)
    return seen


def test_a_backlog_of_segments_is_written_side_by_side_each_signal_once(journal_dir, settings, monkeypatch):
    settings.SIGNALHUB_JOURNAL_SEGMENT_BYTES = 16 * 1024
    settings.SIGNALHUB_BATCH_SIZE = 100_000
    settings.SIGNALHUB_BATCH_TIMEOUT = 3600
    settings.SIGNALHUB_FLUSH_WRITERS = 2
    seen = spy_on_batches(monkeypatch, signals.writepath.flusher)
    ids = [log_signal(signal_data()) for _ in range(400)]
    assert len(signals.writepath.ingest.get_ingestor().segments) > 4

    assert flush_pending(timeout=60) == 400
    assert Signal.objects.filter(signal_id__in=ids).count() == 400
    assert Delivery.objects.filter(signal__signal_id__in=ids).count() == 400
    threads = {name for name, _ in seen}
    assert len(threads) == expected_lanes()
    # The extra lane's connection is closed once its segments are written.
    extra = [conn for name, conn in seen if name.endswith("-lane2")]
    assert all(conn.connection is None for conn in extra)
    assert journal.backlog_stats()["pending_signals"] == 0
    assert list(journal_dir.glob("*" + journal.SEGMENT_SUFFIX)) == [signals.writepath.ingest.get_ingestor().active.path]


def dead_segment(journal_dir, name, values_list):
    journal_dir.mkdir(parents=True, exist_ok=True)
    path = journal_dir / (name + journal.SEGMENT_SUFFIX)
    path.write_bytes(b"".join(journal.encode(values) for values in values_list))
    return path


def test_dead_segments_are_replayed_side_by_side_duplicates_and_conflicts_counted(journal_dir, settings, monkeypatch):
    settings.SIGNALHUB_FLUSH_WRITERS = 2
    seen = spy_on_batches(monkeypatch, signals.writepath.recovery)
    segments = [[clean_signal(signal_data(signal_id=f"D{k}-{n}")) for n in range(50)] for k in range(6)]
    # The same signal in two segments (a retry), and one signal_id with two different contents.
    repeated = clean_signal(signal_data(signal_id="D-REPEATED"))
    segments[1].append(repeated)
    segments[4].append(repeated)
    segments[2].append(clean_signal(signal_data(signal_id="D-TWICE", entry_price=101.0)))
    segments[5].append(clean_signal(signal_data(signal_id="D-TWICE", entry_price=202.0)))
    for k, values_list in enumerate(segments):
        dead_segment(journal_dir, f"dead-{k}", values_list)

    report = replay_dead_segments()
    assert report.segments_replayed == 6 and report.segments_failed == 0
    assert report.written == {"stored": 302, "duplicates": 1, "conflicts": 1, "quarantined": 0}
    assert Signal.objects.count() == 302 and Delivery.objects.count() == 302
    conflict = SignalConflict.objects.get(signal_id="D-TWICE")
    assert {conflict.stored["entry_price"], conflict.incoming["entry_price"]} == {101.0, 202.0}
    assert len({name for name, _ in seen}) == expected_lanes()
    assert list(journal_dir.iterdir()) == []


def test_a_lane_that_fails_loses_nothing_and_the_retry_stores_the_rest_once(journal_dir, settings, monkeypatch):
    settings.SIGNALHUB_JOURNAL_SEGMENT_BYTES = 16 * 1024
    settings.SIGNALHUB_BATCH_SIZE = 100_000
    settings.SIGNALHUB_BATCH_TIMEOUT = 3600
    settings.SIGNALHUB_FLUSH_WRITERS = 2
    real = signals.writepath.flusher.write_journal_batch
    failed, written = [], []

    def fails_once_in_a_lane(*args, **kwargs):
        # The first batch of the second segment: in its own lane on PostgreSQL, after the first on SQLite.
        if not failed and args[1] == second_segment:
            failed.append(threading.current_thread().name)
            raise OperationalError("the database went away")
        written.append(args[1:3])  # (segment, offset): what the other lane committed is not written again
        return real(*args, **kwargs)

    monkeypatch.setattr(signals.writepath.flusher, "write_journal_batch", fails_once_in_a_lane)
    ids = [log_signal(signal_data()) for _ in range(400)]
    second_segment = signals.writepath.ingest.get_ingestor().segments[1].name

    assert flush_pending(timeout=60) == 400
    assert failed, "the failure was not injected"
    assert len(written) == len(set(written))
    assert Signal.objects.filter(signal_id__in=ids).count() == 400
    assert Delivery.objects.filter(signal__signal_id__in=ids).count() == 400
    assert signals.writepath.ingest.get_ingestor().pending == 0
