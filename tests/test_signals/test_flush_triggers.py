"""Every way a write becomes due: size, age (controlled clock), explicit, exit, periodic task."""

import asyncio
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command

from signals.ingest import aflush_pending, flush_pending, log_signal, log_signals
from signals.models import Signal
from signals.tasks import flush_journals
from signals.writepath import journal
from signals.writepath.ingest import Ingestor
from tests.factories import signal_data
from tests.support import ROOT, acked, child_env, start_child, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_batch_size_triggers_a_write_without_flush_pending(journal_dir, settings):
    settings.SIGNALHUB_BATCH_SIZE = 10
    settings.SIGNALHUB_BATCH_TIMEOUT = 3600
    ids = [log_signal(signal_data()) for _ in range(10)]
    assert wait_for(lambda: Signal.objects.filter(signal_id__in=ids).count() == 10, timeout=20)


def test_batch_below_size_waits_for_the_timeout_on_a_controlled_clock(journal_dir, settings):
    settings.SIGNALHUB_BATCH_SIZE = 50
    settings.SIGNALHUB_BATCH_TIMEOUT = 5
    with time_machine.travel("2026-01-05 10:00:00+00:00", tick=False) as traveller:
        # The thread is not started: the test drives the flusher's passes itself.
        ingestor = Ingestor()
        ingestor.start = lambda: None
        ingestor.thread = object()
        cleaned = [_clean(signal_data()) for _ in range(3)]
        ingestor.append([journal.encode(values) for values in cleaned])
        assert not ingestor.is_due()
        assert ingestor.run_pass() is False
        traveller.shift(timedelta(seconds=4.9))
        assert not ingestor.is_due()
        traveller.shift(timedelta(seconds=0.2))
        assert ingestor.is_due()
        assert ingestor.run_pass() is True
    assert Signal.objects.count() == 3 and ingestor.pending == 0
    ingestor.thread = None
    ingestor.shutdown(timeout=1)


def _clean(data):
    from signals.ledger.validation import clean_signal

    return clean_signal(data)


def test_flush_pending_writes_everything_and_returns_the_count(journal_dir, settings):
    settings.SIGNALHUB_BATCH_SIZE = 1000
    settings.SIGNALHUB_BATCH_TIMEOUT = 3600
    ids = log_signals([signal_data() for _ in range(7)])
    ids.append(log_signal(signal_data()))
    assert flush_pending(timeout=20) == 8
    assert Signal.objects.filter(signal_id__in=ids).count() == 8
    assert journal.backlog_stats()["pending_signals"] == 0


def test_flush_pending_from_async_code(journal_dir, settings):
    settings.SIGNALHUB_BATCH_TIMEOUT = 3600

    async def generator():
        signal_id = log_signal(signal_data())  # never waits on the database
        return signal_id, await aflush_pending(timeout=20)

    signal_id, stored = asyncio.run(generator())
    assert stored == 1 and Signal.objects.filter(signal_id=signal_id).exists()


def test_concurrent_threads_each_signal_stored_once(journal_dir, settings):
    import threading

    settings.SIGNALHUB_BATCH_SIZE = 7
    ids, lock = [], threading.Lock()

    def worker():
        for _ in range(50):
            signal_id = log_signal(signal_data(signal_id=None))
            with lock:
                ids.append(signal_id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flush_pending(timeout=30)
    assert len(set(ids)) == 200
    assert Signal.objects.filter(signal_id__in=ids).count() == 200


def test_normal_exit_flushes_and_retires_the_journal(journal_dir):
    env = child_env(journal_dir, SIGNALHUB_BATCH_SIZE=1000, SIGNALHUB_BATCH_TIMEOUT=3600)
    child = start_child(journal_dir, "--prefix", "EXIT", "--count", "12", "--then", "exit", env=env)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    ids = acked(out)
    assert len(ids) == 12
    assert Signal.objects.filter(signal_id__in=ids).count() == 12
    assert journal.segment_paths(journal_dir) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_flush_before_the_process_ends(journal_dir, signum):
    env = child_env(journal_dir, SIGNALHUB_BATCH_SIZE=1000, SIGNALHUB_BATCH_TIMEOUT=3600)
    child = start_child(journal_dir, "--prefix", f"SIG{signum}", "--count", "9", "--then", "wait", env=env)
    lines = []
    for line in child.stdout:
        lines.append(line)
        if line.startswith("READY"):
            break
    assert Signal.objects.filter(signal_id__startswith=f"SIG{signum}").count() == 0
    child.send_signal(signum)
    out, err = child.communicate(timeout=60)
    # The previous handler still runs: default SIGTERM ends the process, SIGINT raises KeyboardInterrupt.
    assert child.returncode != 0
    ids = acked("".join(lines) + out)
    assert len(ids) == 9
    assert Signal.objects.filter(signal_id__in=ids).count() == 9
    assert journal.segment_paths(journal_dir) == []


def _dead_segment(journal_dir, prefix, count):
    env = child_env(journal_dir, SIGNALHUB_BATCH_SIZE=10_000, SIGNALHUB_BATCH_TIMEOUT=3600)
    child = start_child(journal_dir, "--prefix", prefix, "--count", str(count), "--then", "die", env=env)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    return acked(out)


def test_periodic_task_replays_dead_segments_but_not_live_ones(journal_dir):
    dead_ids = _dead_segment(journal_dir, "DEAD", 15)
    env = child_env(journal_dir, SIGNALHUB_BATCH_SIZE=10_000, SIGNALHUB_BATCH_TIMEOUT=3600)
    live = start_child(journal_dir, "--prefix", "LIVE", "--count", "4", "--then", "wait", env=env)
    lines = []
    for line in live.stdout:
        lines.append(line)
        if line.startswith("READY"):
            break
    live_ids = acked("".join(lines))
    try:
        counts = flush_journals()
        assert counts["segments_replayed"] == 1 and counts["segments_live"] == 1
        assert counts["stored"] == 15
        assert Signal.objects.filter(signal_id__in=dead_ids).count() == 15
        assert not Signal.objects.filter(signal_id__in=live_ids).exists()
    finally:
        live.kill()
        live.communicate(timeout=30)
    # Once its owner is dead, the same segment is replayed.
    assert flush_journals()["stored"] == 4
    assert Signal.objects.filter(signal_id__in=live_ids).count() == 4


def test_schedule_is_registered_by_name_once(journal_dir):
    from django_q.models import Schedule

    from signalhub.schedules import ensure_schedules

    ensure_schedules()
    ensure_schedules()
    schedule = Schedule.objects.get(name="signalhub.flush_journals")
    assert schedule.func == "signals.tasks.flush_journals" and schedule.kwargs == "repeat=True"
    assert Schedule.objects.filter(name="signalhub.flush_journals").count() == 1


@pytest.mark.slow
def test_flush_task_runs_in_a_real_qcluster(journal_dir):
    from django_q.tasks import async_task

    ids = _dead_segment(journal_dir, "QC", 20)
    call_command("createcachetable", verbosity=0)
    async_task("signals.tasks.flush_journals")
    env = child_env(journal_dir, SIGNALHUB_Q_WORKERS=1, SIGNALHUB_LOG_LEVEL="info")
    log = (journal_dir.parent / "qcluster.log").open("a+")
    # Its own session, so that the cluster's forked workers can be stopped with it.
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        stored = wait_for(lambda: Signal.objects.filter(signal_id__in=ids).count() == 20, timeout=90)
        log.seek(0)
        assert stored, log.read()[-3000:]
        assert wait_for(lambda: journal.segment_paths(journal_dir) == [], timeout=10)
    finally:
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()
        log.close()


def test_a_process_that_goes_on_after_the_exit_flush_keeps_flushing(journal_dir, settings):
    # SIGINT caught by the program: the exit flush ran, then logging goes on.
    settings.SIGNALHUB_BATCH_TIMEOUT = 3600
    from signals.ingest import get_ingestor

    first = log_signal(signal_data())
    get_ingestor().shutdown(timeout=20)
    assert Signal.objects.filter(signal_id=first).exists()
    assert journal.segment_paths(journal_dir) == []
    second = log_signal(signal_data())
    assert flush_pending(timeout=20) == 1
    assert Signal.objects.filter(signal_id=second).exists()
