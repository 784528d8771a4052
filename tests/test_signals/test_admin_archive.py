"""Archived signals are browsable, read-only, in the admin."""

import pytest
from django.contrib.auth import get_user_model

from tests.support import store_signals, utc

pytestmark = pytest.mark.django_db(databases=["default", "archive"])


@pytest.fixture
def staff_client(client):
    admin = get_user_model().objects.create_superuser("ops", password="a-long-test-password")
    client.force_login(admin)
    return client


def test_archived_signals_are_listed_from_the_archive_database(staff_client):
    [archived] = store_signals(1, created_at=utc(2024, 1, 1), using="archive", symbol="ARCH")
    [current] = store_signals(1, created_at=utc(2026, 1, 1), symbol="MAIN")

    page = staff_client.get("/admin/signals/archivedsignal/")

    assert page.status_code == 200
    assert archived.signal_id in page.content.decode()
    assert current.signal_id not in page.content.decode()
    found = staff_client.get("/admin/signals/archivedsignal/", {"q": archived.signal_id})
    assert archived.signal_id in found.content.decode()


def test_archived_signals_are_read_only(staff_client):
    [archived] = store_signals(1, created_at=utc(2024, 1, 1), using="archive")

    detail = staff_client.get(f"/admin/signals/archivedsignal/{archived.pk}/change/")

    assert detail.status_code == 200
    assert archived.signal_id in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()
    assert staff_client.get("/admin/signals/archivedsignal/add/").status_code == 403
    assert staff_client.post(f"/admin/signals/archivedsignal/{archived.pk}/delete/").status_code == 403
