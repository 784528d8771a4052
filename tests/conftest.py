import os

import pytest
from django.db import connection

from signalhub.private_files import make_private_dir
from tests.support import running_alpine_stub


def pytest_sessionstart(session):
    from django.conf import settings

    # WhiteNoise warns about a missing STATIC_ROOT each time the middleware loads. The data
    # directory is 0700, as bootstrap leaves it (signalhub.W001), even if `make`'s mkdir -p made it.
    make_private_dir(settings.STATIC_ROOT)
    os.chmod(settings.DATA_DIR, 0o700)
    # .ci/run sets this for its PostgreSQL run, so that a misconfigured run
    # fails instead of quietly testing SQLite twice.
    if os.environ.get("SIGNALHUB_REQUIRE_POSTGRES") == "1" and connection.vendor != "postgresql":
        raise pytest.UsageError(f"SIGNALHUB_REQUIRE_POSTGRES=1 but the database is {connection.vendor}")


@pytest.fixture(autouse=True)
def _plain_http_and_static(settings):
    # The suite runs with DEBUG off (production security settings); the test
    # client speaks plain HTTP and there is no collected static manifest.
    settings.SECURE_SSL_REDIRECT = False
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


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
def alpine_stub(monkeypatch, fast_sync):
    """The real Alpine stub on an ephemeral loopback port, configured as SignalHub's Alpine (with fast_sync)."""
    with running_alpine_stub(monkeypatch) as server:
        yield server
