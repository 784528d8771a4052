"""archive_signals and restore_signals killed with SIGKILL at random moments, then run again.

After each re-run every signal is in exactly one database, unchanged. The
moments are random but seeded per trial, so a failure can be replayed.
"""

import random
import signal
import subprocess
import time

import pytest

from signals.models import Signal
from tests.support import (backend_name, manage, process_env, snapshot, store_signals, utc, wait_for,
                           wait_for_backends_gone)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, databases=["default", "archive"])]

SIGNALS = 4_000
TRIALS = 3


def _kill_at_random(args, rng, moving):
    """Start ``manage.py args`` and SIGKILL it at a random moment; return when that was.

    Most kills land after ``moving()`` shows the first batch committed to the
    target (mid-run, where it matters); some before the run got that far.
    Returns once the killed run's database sessions have gone too: until then
    a COMMIT it sent may still land, and on PostgreSQL its advisory lock is
    still held, so the next run would be refused as a second run.
    """
    name = backend_name(args[0][:12])
    process = manage(*args, env=process_env(PGAPPNAME=name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if rng.random() < 0.75:
            wait_for(lambda: moving() or process.poll() is not None, timeout=300, interval=0.005)
        delay = rng.uniform(0, 0.4)
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            _wait_for_sessions_gone(name)
            return f"killed {delay:.2f} s after the first batch (target held {moving()} rows)"
        return f"finished before the kill (exit {process.returncode})"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            _wait_for_sessions_gone(name)


def _wait_for_sessions_gone(name):
    # Either database may be the PostgreSQL one; a SQLite alias has no sessions to wait for.
    for alias in ("default", "archive"):
        wait_for_backends_gone(name, using=alias)


def _assert_each_signal_in_exactly_one_database(originals):
    main, archived = snapshot("default"), snapshot("archive")
    assert not set(main) & set(archived), "signals in both databases after the re-run"
    assert {**main, **archived} == originals  # none lost, none changed, same ids


@pytest.mark.parametrize("trial", range(TRIALS))
def test_killed_archive_run_is_completed_by_the_next_run(trial):
    rng = random.Random(trial)
    store_signals(SIGNALS, created_at=utc(2024, 1, 1), step=utc(2024, 1, 1, 0, 0, 1) - utc(2024, 1, 1))
    originals = snapshot("default")
    archive_args = ("archive_signals", "--before", "2025-01-01", "--batch-size", str(rng.choice([50, 200, 500])))

    how = _kill_at_random(archive_args, rng, moving=lambda: Signal._base_manager.using("archive").count())
    moved_before_rerun = Signal._base_manager.using("archive").count()
    finished = manage(*archive_args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, errors = finished.communicate(timeout=300)

    assert finished.returncode == 0, f"re-run failed after the first run {how}: {errors}"
    print(how)
    _assert_each_signal_in_exactly_one_database(originals)
    assert Signal._base_manager.using("archive").count() == SIGNALS, how
    assert 0 <= moved_before_rerun <= SIGNALS


def test_killed_restore_run_is_completed_by_the_next_run():
    rng = random.Random(99)
    store_signals(SIGNALS, created_at=utc(2024, 1, 1), step=utc(2024, 1, 1, 0, 0, 1) - utc(2024, 1, 1))
    originals = snapshot("default")
    assert manage("archive_signals", "--before", "2025-01-01", "--no-vacuum",
                  stdout=subprocess.DEVNULL).wait(timeout=300) == 0
    restore_args = ("restore_signals", "--all", "--batch-size", "100")

    how = _kill_at_random(restore_args, rng, moving=lambda: Signal._base_manager.using("default").count())
    finished = manage(*restore_args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, errors = finished.communicate(timeout=300)

    assert finished.returncode == 0, f"re-run failed after the first run {how}: {errors}"
    _assert_each_signal_in_exactly_one_database(originals)
    assert Signal._base_manager.using("default").count() == SIGNALS, how
