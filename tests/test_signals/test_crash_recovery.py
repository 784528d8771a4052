"""SIGKILL at random moments, and a database locked or down: every acknowledged signal is stored once."""

import random
import threading
import time

import psycopg
import pytest
from django.db import connection

from signals.models import Signal
from signals.tasks import flush_journals
from signals.writepath import journal
from tests.support import acked, backend_name, child_env, start_child, wait_for, wait_for_backends_gone

pytestmark = pytest.mark.django_db(transaction=True)


class Reader(threading.Thread):
    """Collect a child's stdout as it comes, so the test can kill it at any moment."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.chunks = stream, []

    def run(self):
        for line in self.stream:
            self.chunks.append(line)

    def text(self):
        return "".join(self.chunks)

    def wait_for(self, marker, seconds=60):
        return wait_for(lambda: any(chunk.startswith(marker) for chunk in list(self.chunks)), seconds, interval=0.01)


def assert_all_stored_once(ids):
    assert ids, "the child acknowledged nothing"
    stored = set()
    for start in range(0, len(ids), 500):
        stored.update(Signal.objects.filter(signal_id__in=ids[start:start + 500]).values_list("signal_id", flat=True))
    missing = set(ids) - stored
    assert not missing, f"{len(missing)} acknowledged signals lost, e.g. {sorted(missing)[:3]}"
    # Exactly once: the unique signal_id guarantees no second row; check no acknowledged id repeats either.
    assert len(ids) == len(set(ids))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))
def test_sigkill_at_a_random_moment_loses_no_acknowledged_signal(journal_dir, trial):
    rng = random.Random(trial)
    name = backend_name(f"kill{trial}")
    env = child_env(journal_dir, PGAPPNAME=name, SIGNALHUB_BATCH_SIZE=rng.choice([5, 20, 50]),
                    SIGNALHUB_BATCH_TIMEOUT=0.05, SIGNALHUB_JOURNAL_SEGMENT_BYTES=rng.choice([4096, 65536, 1 << 24]))
    child = start_child(journal_dir, "--prefix", f"KILL{trial}", "--then", "forever", env=env)
    reader = Reader(child.stdout)
    reader.start()
    assert reader.wait_for("ACK ")
    time.sleep(rng.uniform(0.2, 1.2))
    child.kill()
    child.wait(timeout=30)
    reader.join(timeout=10)
    # A COMMIT the child sent just before dying may still be running in the server.
    wait_for_backends_gone(name)
    ids = acked(reader.text())
    counts = flush_journals()
    assert counts["segments_failed"] == 0
    assert_all_stored_once(ids)
    assert journal.segment_paths(journal_dir) == []
    assert journal.backlog_stats()["pending_signals"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(2))
def test_sigkill_in_the_middle_of_a_large_flush(journal_dir, trial):
    name = backend_name(f"mid{trial}")
    env = child_env(journal_dir, PGAPPNAME=name, SIGNALHUB_BATCH_SIZE=100_000, SIGNALHUB_BATCH_TIMEOUT=3600,
                    SIGNALHUB_BATCH_MAX=500)
    child = start_child(journal_dir, "--prefix", f"MID{trial}", "--count", "6000", "--then", "flush", env=env)
    reader = Reader(child.stdout)
    reader.start()
    assert reader.wait_for("FLUSH")
    time.sleep(random.Random(trial).uniform(0.0, 0.15))
    child.kill()
    child.wait(timeout=30)
    reader.join(timeout=10)
    ids = acked(reader.text())
    assert len(ids) == 6000
    # The kill can land while the server runs the child's COMMIT; it finishes
    # after the child is dead. Count only once that backend has gone, or the
    # rows it commits are counted as "not stored" and then found as duplicates.
    wait_for_backends_gone(name)
    stored_before = Signal.objects.filter(signal_id__startswith=f"MID{trial}").count()
    counts = flush_journals()
    assert counts["segments_failed"] == 0
    assert_all_stored_once(ids)
    # Whatever the killed flush had committed is now a duplicate, not a second row.
    assert counts["stored"] == 6000 - stored_before, (counts, stored_before)
    assert Signal.objects.filter(signal_id__startswith=f"MID{trial}").count() == 6000


def _hold_write_lock():
    """Hold the database's write lock from another connection; return a function releasing it."""
    if connection.vendor == "sqlite":
        import sqlite3

        other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        return lambda: (other.execute("ROLLBACK"), other.close())
    config = connection.settings_dict
    other = psycopg.connect(host=config["HOST"] or "127.0.0.1", port=config["PORT"] or 5432, user=config["USER"],
                            password=config["PASSWORD"] or None, dbname=config["NAME"])
    other.execute("LOCK TABLE signals_signal IN ACCESS EXCLUSIVE MODE")
    return lambda: (other.rollback(), other.close())


@pytest.mark.slow
def test_database_locked_during_flushes_keeps_everything_then_stores_it(journal_dir):
    # The child gives up on a lock quickly (SQLite busy timeout, PostgreSQL lock_timeout), then retries.
    env = child_env(journal_dir, SIGNALHUB_BATCH_SIZE=5, SIGNALHUB_BATCH_TIMEOUT=0.05,
                    SIGNALHUB_SQLITE_BUSY_TIMEOUT=0.1, PGOPTIONS="-c lock_timeout=100",
                    SIGNALHUB_FLUSH_RETRY_MAX=0.5)
    release = _hold_write_lock()
    try:
        child = start_child(journal_dir, "--prefix", "LOCKED", "--count", "30", "--then", "retry", env=env,
                            stdin=__import__("subprocess").PIPE)
        reader = Reader(child.stdout)
        reader.start()
        assert reader.wait_for("STORED")
        assert "STORED 0" in reader.text()
        assert journal.backlog_stats()["pending_signals"] == 30
    finally:
        release()
    child.stdin.write("go\n")
    child.stdin.flush()
    child.wait(timeout=60)
    reader.join(timeout=10)
    assert child.returncode == 0, child.stderr.read()
    assert "STORED 30" in reader.text()
    assert_all_stored_once(acked(reader.text()))
    assert journal.segment_paths(journal_dir) == []


@pytest.mark.slow
def test_database_down_keeps_everything_in_the_journal_for_the_periodic_flush(journal_dir):
    down = ("sqlite:////nonexistent-signalhub-dir/db.sqlite3" if connection.vendor == "sqlite"
            else "postgres://postgres@127.0.0.1:1/signalhub_down")
    env = child_env(journal_dir, DATABASE_URL=down, SIGNALHUB_BATCH_SIZE=5, SIGNALHUB_BATCH_TIMEOUT=0.05,
                    SIGNALHUB_EXIT_FLUSH_TIMEOUT=1, SIGNALHUB_FLUSH_RETRY_MAX=0.2)
    child = start_child(journal_dir, "--prefix", "DOWN", "--count", "25", "--then", "exit", env=env)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    ids = acked(out)
    assert len(ids) == 25
    assert "stay in the journal" in err + out
    assert journal.backlog_stats()["pending_signals"] == 25
    # The database is back (the test's own connection): the periodic flush stores them all.
    counts = flush_journals()
    assert counts["stored"] == 25
    assert_all_stored_once(ids)
    assert journal.segment_paths(journal_dir) == []
