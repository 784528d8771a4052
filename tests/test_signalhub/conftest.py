"""Fixtures of the admin tests: staff in each role, and one row in every admin list."""

import pytest
from django.contrib.auth.models import Group, User

from signalhub import roles
from signals.models import QuarantinedRecord, SignalConflict
from sync.models import Destination
from sync.outbox import enqueue_deliveries
from tests.factories import make_signal
from tests.support import store_signals, utc


def _staff_in(client, username, group):
    roles.ensure_roles()
    user = User.objects.create_user(username, password="not-used", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client):
    return _staff_in(client, "viewer", roles.VIEWERS)


@pytest.fixture
def operator(client):
    return _staff_in(client, "operator", roles.OPERATORS)


@pytest.fixture
def rows():
    """One row in every admin list: a signal with its delivery, an archived signal, a conflict, a quarantined record."""
    signal = make_signal(symbol="MSFT", reasoning="Momentum with volume")
    enqueue_deliveries([signal.signal_id])
    Destination.objects.alpine()
    store_signals(1, created_at=utc(2024, 1, 1), using="archive", symbol="ARCH")
    SignalConflict.objects.create(signal_id="SIG-1", stored={}, incoming={}, incoming_digest="d" * 64, source="seg@0")
    QuarantinedRecord.objects.create(reason="checksum mismatch", raw="garbage", source="seg@10", fingerprint="f" * 64)
    return signal
