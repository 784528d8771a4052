import pytest
import time_machine

from django.contrib.auth.models import Permission, User

import signals.writepath.ingest
from tests.support import ADMIN_NOW, admin_desk
from tests.test_signals.monitor_support import NOW


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


@pytest.fixture
def sync_off(monkeypatch):
    """Delivery to Alpine switched off by configuration (no ALPINE_API_URL)."""
    for name in ("ALPINE_API_URL", "ARGO_API_KEY", "ALPINE_SYNC_ENABLED", "SIGNALHUB_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def frozen_clock():
    """The clock standing at monitor_support.NOW (the monitor_signals tests use it)."""
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def staff_client(client):
    # Every permission the model has: the admin itself must refuse add, change and delete.
    user = User.objects.create_user("desk", password="not-used", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="signals", content_type__model="signal"))
    # The CSV export also takes the delivery operators' permission.
    user.user_permissions.add(Permission.objects.get(content_type__app_label="sync", codename="operate_delivery"))
    client.force_login(user)
    return client


@pytest.fixture
def desk():
    """The Signal admin's small ledger: one signal per interesting case, keyed by name."""
    return admin_desk()


@pytest.fixture
def admin_clock():
    """The clock standing at ADMIN_NOW, when the admin's small ledger was made."""
    with time_machine.travel(ADMIN_NOW, tick=False):
        yield
