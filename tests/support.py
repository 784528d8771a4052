"""What tests share: rows, subprocesses and their environment, waiting, and the local Alpine.

Fixtures live in the conftests and are built on these; a test module imports
helpers from here, never from a conftest.
"""

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import connections

from signals.ledger.validation import clean_signal
from signals.models import Signal
from tests.factories import signal_data

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "test_signals" / "child.py"
ALPINE_STUB_KEY = "stub-key-0123456789abcdef"


@contextlib.contextmanager
def running_alpine_stub(monkeypatch):
    """Run the real Alpine stub on an ephemeral loopback port, configured as SignalHub's Alpine.

    The ``alpine_stub`` fixture is built on this; use it directly only where a
    test needs the stub for part of its run.
    """
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


def process_env(*, alpine=None, **extra):
    """Return the environment for a subprocess that uses this test run's databases.

    ``alpine``, a running stub, makes it the subprocess's Alpine. Each of
    ``extra`` is set as a string, after the rest, so it can replace any of them.
    """
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url("default"), SIGNALHUB_ARCHIVE_DATABASE_URL=database_url("archive"),
               DJANGO_SETTINGS_MODULE="signalhub.settings", PYTHONUNBUFFERED="1")
    if alpine is not None:
        env.update(ALPINE_API_URL=alpine.url, ARGO_API_KEY=alpine.state.key)
    env.update({key: str(value) for key, value in extra.items()})
    return env


def child_env(journal_dir, **extra):
    """Return the environment for a generator child (``child.py``) journaling to ``journal_dir``."""
    return process_env(**{"SIGNALHUB_JOURNAL_DIR": journal_dir, "PYTHONPATH": ROOT,
                          "SIGNALHUB_LOG_LEVEL": "warning", **extra})


def manage(*args, env=None, **popen):
    """Start ``manage.py args`` as a subprocess on the test databases; return the Popen."""
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT,
                            env=env or process_env(), **popen)


def start_manage(*args, env):
    """Start a manage.py command in its own process group (so stop_group reaches its children)."""
    return manage(*args, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                  text=True)


def stop_group(process, timeout=20):
    """SIGTERM the process's group, SIGKILL it if it has not exited in ``timeout``; return its output."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return process.communicate()[0]


def start_child(journal_dir, *args, env=None, **popen):
    """Start the generator child ``child.py args``; return the Popen, its output as text pipes."""
    return subprocess.Popen([sys.executable, str(CHILD), *args], cwd=ROOT, env=env or child_env(journal_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def acked(stdout_text):
    """Return the signal ids a child acknowledged (only whole ``ACK <id>`` lines)."""
    return [line.split(" ", 1)[1] for line in stdout_text.split("\n")[:-1] if line.startswith("ACK ")]


def free_port():
    """Return a loopback TCP port that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url, timeout=2):
    """Return the HTTP status a GET of ``url`` answers with; None if it does not answer or fails."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status
    except OSError:
        return None


def descendants(pid):
    """Return the pids of every process below ``pid`` (read from /proc)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


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


# The Signal admin's small ledger ---------------------------------------------------------

ADMIN_NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def admin_signal(created_at=None, **overrides):
    """Store one valid signal (validated at ADMIN_NOW), stored at ``created_at`` when given."""
    values = clean_signal(signal_data(**overrides), now=ADMIN_NOW)
    if created_at is not None:
        values["created_at"] = created_at
    return Signal.objects.create(**values)


def admin_desk():
    """A small ledger with one signal per interesting case, keyed by name."""
    rows = {
        "new_buy": admin_signal(created_at=ADMIN_NOW - timedelta(hours=1), symbol="AAPL", action="BUY", confidence=92),
        "sell_crypto": admin_signal(created_at=ADMIN_NOW - timedelta(days=3), symbol="BTC-USD", action="SELL", asset_type="crypto",
                               entry_price=60_000.0, target_price=57_000.0, stop_price=61_500.0, confidence=80),
        "won": admin_signal(created_at=ADMIN_NOW - timedelta(days=10), symbol="MSFT", confidence=70),
        "lost": admin_signal(created_at=ADMIN_NOW - timedelta(days=20), symbol="NVDA", confidence=50),
        "old": admin_signal(created_at=ADMIN_NOW - timedelta(days=45), symbol="SPY", asset_type="etf", confidence=60),
    }
    rows["won"].close(112.0, exit_timestamp=ADMIN_NOW - timedelta(days=9))
    rows["lost"].close(90.0, exit_timestamp=ADMIN_NOW - timedelta(days=19))
    rows["old"].close(101.0, exit_timestamp=ADMIN_NOW - timedelta(days=44))
    rows["won"].record_execution("ORD-777", "executor-1")
    return rows
