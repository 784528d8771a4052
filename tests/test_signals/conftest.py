import os
import subprocess
import sys
from pathlib import Path

import pytest

import signals.writepath.ingest
from tests.support import alpine_stub_as_alpine, database_url

BASE_DIR = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("child.py")


@pytest.fixture
def journal_dir(settings, tmp_path):
    """A fresh journal directory for this test, and a fresh ingestor that is shut down after it."""
    directory = tmp_path / "journal"
    settings.SIGNALHUB_JOURNAL_DIR = directory
    signals.writepath.ingest._ingestor = None
    yield directory
    ingestor = signals.writepath.ingest._ingestor
    if ingestor is not None:
        ingestor.shutdown(timeout=5)
    signals.writepath.ingest._ingestor = None


def child_env(journal_dir, **extra):
    env = {**os.environ, "DATABASE_URL": database_url(), "SIGNALHUB_JOURNAL_DIR": str(journal_dir),
           "DJANGO_SETTINGS_MODULE": "signalhub.settings", "PYTHONPATH": str(BASE_DIR),
           "SIGNALHUB_LOG_LEVEL": "warning"}
    env.update({key: str(value) for key, value in extra.items()})
    return env


def start_child(journal_dir, *args, env=None, **popen):
    return subprocess.Popen([sys.executable, str(CHILD), *args], cwd=BASE_DIR, env=env or child_env(journal_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def acked(stdout_text):
    """Return the signal ids a child acknowledged (only whole ``ACK <id>`` lines)."""
    return [line.split(" ", 1)[1] for line in stdout_text.split("\n")[:-1] if line.startswith("ACK ")]


@pytest.fixture
def sync_off(monkeypatch):
    """Delivery to Alpine switched off by configuration (no ALPINE_API_URL)."""
    for name in ("ALPINE_API_URL", "ARGO_API_KEY", "ALPINE_SYNC_ENABLED", "SIGNALHUB_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def alpine_stub(monkeypatch, settings):
    """The real Alpine stub on an ephemeral loopback port, configured as SignalHub's Alpine."""
    settings.ALPINE_TIMEOUT = 2.0
    with alpine_stub_as_alpine(monkeypatch) as server:
        yield server
