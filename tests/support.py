"""Rows, processes and the local Alpine for tests that need more than one module does."""

import contextlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import connections

from signals.models import Signal
from signals.validation import clean_signal
from tests.factories import signal_data

ROOT = Path(__file__).resolve().parent.parent
ALPINE_STUB_KEY = "stub-key-0123456789abcdef"


@contextlib.contextmanager
def alpine_stub_as_alpine(monkeypatch):
    """Run the real Alpine stub on an ephemeral loopback port, configured as SignalHub's Alpine."""
    from sync.stub import AlpineStub

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
