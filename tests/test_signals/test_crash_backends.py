"""A generator killed while PostgreSQL is still committing its batch: count only once the backend has gone.

The killed client's socket closes at once, but a COMMIT it already sent goes
on in the server and lands later. A crash test that counts before then sees
rows vanish from "stored before the replay" and turn up as duplicates. These
tests hold that COMMIT open on purpose, so the race is certain, not one run in six.
"""

import signal
import subprocess

import pytest
from django.db import connection

from signals.models import Signal
from signals.tasks import flush_journals
from tests.support import (backend_name, backends_named, manage, process_env, store_signals, utc, wait_for,
                           wait_for_backends_gone)
from tests.support import acked, child_env, start_child

pytestmark = pytest.mark.django_db(transaction=True)

COMMIT_SECONDS = 2.0


@pytest.fixture
def slow_commit():
    """Make COMMIT sleep in the server for a transaction that stored (or deleted) the signal id it is given.

    A deferred constraint trigger runs at COMMIT, after the client has sent it:
    exactly the moment a SIGKILL of the client cannot stop.
    """
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no server: a killed process's transaction ends with the process")
    table = Signal._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION sh_test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF coalesce(NEW.signal_id, OLD.signal_id) = TG_ARGV[0] THEN PERFORM pg_sleep(TG_ARGV[1]::float); "
            "END IF; RETURN NULL; END $$")
    installed = []

    def install(signal_id, event="INSERT", seconds=COMMIT_SECONDS):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE CONSTRAINT TRIGGER sh_test_slow_commit AFTER {event} ON "{table}" '
                           "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sh_test_slow_commit(%s, %s)",
                           [signal_id, str(seconds)])
        installed.append(True)

    try:
        yield install
    finally:
        # The test is transactional: DDL is committed, so undo it for the tests that follow.
        with connection.cursor() as cursor:
            if installed:
                cursor.execute(f'DROP TRIGGER IF EXISTS sh_test_slow_commit ON "{table}"')
            cursor.execute("DROP FUNCTION IF EXISTS sh_test_slow_commit()")


def _sleeping_in_commit(name):
    return any(wait_event == "PgSleep" for _, _, wait_event, _ in backends_named(name))


def test_rows_of_a_commit_under_way_at_the_kill_are_counted_once_the_backend_has_gone(journal_dir, slow_commit):
    slow_commit("SLOW-0000000")
    name = backend_name("slow-commit")
    # The backlog is below the batch size: flush_pending writes it in one transaction.
    env = child_env(journal_dir, PGAPPNAME=name, SIGNALHUB_BATCH_SIZE=100_000, SIGNALHUB_BATCH_TIMEOUT=3600)
    child = start_child(journal_dir, "--prefix", "SLOW", "--count", "600", "--then", "flush", env=env)
    try:
        # The name is how the wait finds the child's sessions: prove it reaches the server.
        assert wait_for(lambda: _sleeping_in_commit(name), timeout=60), (
            f"the child's batch never reached its COMMIT under {name}: {backends_named(name)}")
    finally:
        child.kill()
    out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    ids = acked(out)
    assert len(ids) == 600

    wait_for_backends_gone(name, timeout=COMMIT_SECONDS + 60)
    stored_before = Signal.objects.filter(signal_id__startswith="SLOW-").count()
    # The COMMIT the dead client had sent landed after the kill: its whole batch is stored.
    assert stored_before == 600
    counts = flush_journals()
    assert counts["segments_failed"] == 0
    assert counts["stored"] == 600 - stored_before
    assert counts["duplicates"] == 600
    assert Signal.objects.filter(signal_id__in=ids).count() == 600


def test_waiting_for_a_dead_clients_backends_fails_naming_them_when_they_stay(journal_dir):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no server sessions to wait for")
    name = backend_name("stays")
    env = child_env(journal_dir, PGAPPNAME=name, SIGNALHUB_BATCH_SIZE=5, SIGNALHUB_BATCH_TIMEOUT=0.05)
    # A live child that has stored its signals and keeps its connection while it waits on stdin.
    child = start_child(journal_dir, "--prefix", "STAY", "--count", "3", "--then", "retry", env=env,
                        stdin=subprocess.PIPE)
    try:
        assert child.stdout.readline().startswith("STARTED")
        assert wait_for(lambda: backends_named(name), timeout=60), "the child never opened a named session"
        with pytest.raises(AssertionError, match=name):
            wait_for_backends_gone(name, timeout=0.3)
    finally:
        child.kill()
        child.communicate(timeout=30)
    wait_for_backends_gone(name)
    assert backends_named(name) == []


@pytest.mark.django_db(transaction=True, databases=["default", "archive"])
def test_a_rerun_after_a_kill_during_commit_is_not_refused_by_the_dead_runs_lock(slow_commit):
    # On PostgreSQL archive_signals holds a session advisory lock, which goes only with the session.
    stored = store_signals(300, created_at=utc(2024, 1, 1))
    slow_commit(stored[0].signal_id, event="DELETE", seconds=6)
    name = backend_name("archive")
    args = ("archive_signals", "--before", "2025-01-01", "--batch-size", "100")
    first = manage(*args, env=process_env(PGAPPNAME=name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: _sleeping_in_commit(name), timeout=60), (
            f"the archive run never reached its first COMMIT under {name}: {backends_named(name)}")
    finally:
        first.kill()
        first.wait(timeout=30)

    wait_for_backends_gone(name, timeout=60)
    rerun = manage(*args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    assert Signal._base_manager.using("default").count() == 0
    assert Signal._base_manager.using("archive").count() == 300, output
