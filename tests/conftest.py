import os

import pytest
from django.db import connection


def pytest_sessionstart(session):
    from django.conf import settings

    # WhiteNoise warns about a missing STATIC_ROOT each time the middleware loads.
    settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)
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
