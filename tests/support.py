"""Rows, processes and the local Alpine for tests that need more than one module does."""

import contextlib
import itertools
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import connections

from signals.ledger.validation import clean_signal
from signals.models import Signal
from tests.factories import signal_data

ROOT = Path(__file__).resolve().parent.parent
ALPINE_STUB_KEY = "stub-key-0123456789abcdef"


@contextlib.contextmanager
def alpine_stub_as_alpine(monkeypatch):
    """Run the real Alpine stub on an ephemeral loopback port, configured as SignalHub's Alpine."""
    from sync.testing.stub import AlpineStub

    server = AlpineStub(key=ALPINE_STUB_KEY, seed=7).start()
    monkeypatch.setenv("ALPINE_API_URL", server.url)
    monkeypatch.setenv("ARGO_API_KEY", ALPINE_STUB_KEY)
    monkeypatch.delenv("ALPINE_SYNC_ENABLED", raising=False)
    monkeypatch.delenv("SIGNALHUB_CONFIG_FILE", raising=False)
    try:
        yield server
    finally:
        server.stop()


def store_signals(count, *, created_at, step=timedelta(minutes=1), using="default", **overrides):
    """Store ``count`` valid signals created at ``created_at``, ``created_at + step``, ...; return them."""
    rows = []
    for n in range(count):
        values = clean_signal(signal_data(**overrides))
        rows.append(Signal(**values, created_at=created_at + n * step))
    return Signal._base_manager.using(using).bulk_create(rows)


def snapshot(using):
    """Return ``{signal_id: (pk, every column value...)}`` of the signals in ``using``."""
    fields = [f.attname for f in Signal._meta.concrete_fields]
    return {row[fields.index("signal_id")]: row
            for row in Signal._base_manager.using(using).order_by("pk").values_list(*fields)}


def database_url(alias="default"):
    """Return a DATABASE_URL for this test run's database ``alias``, for subprocesses."""
    settings = connections[alias].settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    user = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    return f"postgres://{user}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


def process_env(**extra):
    """Return the environment for a ``manage.py`` subprocess that uses this test run's databases."""
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url("default"), SIGNALHUB_ARCHIVE_DATABASE_URL=database_url("archive"),
               DJANGO_SETTINGS_MODULE="signalhub.settings", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def manage(*args, env=None, **popen):
    """Start ``manage.py args`` as a subprocess on the test databases; return the Popen."""
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT,
                            env=env or process_env(), **popen)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def drop_index(name, using="default"):
    """Drop an index inside the test's transaction (rolled back with it on SQLite and PostgreSQL)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"DROP INDEX {connections[using].ops.quote_name(name)}")


def wait_for(predicate, timeout=30.0, interval=0.05):
    """Return True as soon as ``predicate()`` is true; after ``timeout`` seconds return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


_backend_names = itertools.count()


def backend_name(label):
    """Return a PostgreSQL application_name unique to this test process, for a subprocess's PGAPPNAME.

    libpq reads PGAPPNAME when the connection string names no application, so
    every connection the subprocess opens (pool, lanes, archive) carries it.
    """
    return f"sh-test-{label}-{os.getpid()}-{next(_backend_names)}"[:63]


def backends_named(name, using="default"):
    """Return ``(pid, state, wait_event, query)`` of the PostgreSQL backends named ``name``; [] on SQLite."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        # Within a transaction PostgreSQL answers pg_stat_activity from a snapshot: drop it to see now.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT pid, state, wait_event, left(query, 120) FROM pg_stat_activity "
                       "WHERE application_name = %s", [name])
        return cursor.fetchall()


def wait_for_backends_gone(name, timeout=60.0, using="default"):
    """Wait until no PostgreSQL backend named ``name`` is left; fail naming those still there.

    A client killed with SIGKILL may have sent a COMMIT the server has not
    finished: its backend commits, then finds the socket closed and exits.
    Until then a count races that COMMIT. SQLite has no server: once the
    process has exited, its last transaction is committed or rolled back.
    """
    if not wait_for(lambda: not backends_named(name, using), timeout, interval=0.02):
        raise AssertionError(f"the killed process's database sessions ({name}) were still there after "
                             f"{timeout} s: {backends_named(name, using)}")
