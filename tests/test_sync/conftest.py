import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ALPINE_STUB_KEY as STUB_KEY
from tests.support import alpine_stub_as_alpine, database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fast_sync(settings):
    """Small timeouts and backoff, so retries happen within a test."""
    settings.ALPINE_TIMEOUT = 2.0
    settings.SIGNALHUB_SYNC_BACKOFF_BASE = 0.0
    settings.SIGNALHUB_SYNC_BACKOFF_CAP = 0.0
    settings.SIGNALHUB_SYNC_CONCURRENCY = 4
    settings.SIGNALHUB_SYNC_BATCH_SIZE = 50
    return settings


@pytest.fixture
def stub(monkeypatch, fast_sync):
    """A real Alpine stub on an ephemeral loopback port, configured as SignalHub's Alpine."""
    with alpine_stub_as_alpine(monkeypatch) as server:
        yield server


def subprocess_env(stub_url, **extra):
    env = {**os.environ, "DATABASE_URL": database_url(), "ALPINE_API_URL": stub_url, "ARGO_API_KEY": STUB_KEY,
           "PYTHONUNBUFFERED": "1"}
    env.update({key: str(value) for key, value in extra.items()})
    return env


def start_manage(*args, env):
    """Start a manage.py command in its own process group (so stop_group reaches its children)."""
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


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
