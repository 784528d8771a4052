"""The deliveries admin as staff: list, detail, actions."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from sync.delivery import handle_one_batch
from sync.models import Delivery, Destination
from sync.outbox import enqueue_deliveries
from sync.tasks import retry_dead_since
from tests.factories import make_signal

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:sync_delivery_changelist"


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-staff-123456")
    client.force_login(user)
    return client


def queued(**overrides):
    signal = make_signal(**overrides)
    enqueue_deliveries([signal.signal_id])
    return Delivery.objects.get(signal=signal)


def test_list_shows_counts_per_state_health_and_filters(staff, alpine_stub):
    queued(reasoning="short")  # dead: Alpine cannot store it
    queued()
    handle_one_batch()
    queued()
    response = staff.get(reverse(CHANGELIST))
    page = response.content.decode()
    assert response.status_code == 200
    assert "delivered: 1" in page and "dead: 1" in page and "pending: 1" in page
    assert "Delivery to Alpine is running" in page and "Last success:" in page
    dead = staff.get(reverse(CHANGELIST), {"state": "dead", "error_class": "rejected", "age": "1h"}).content.decode()
    assert "rationale too short" in dead and dead.count('class="action-select"') == 1


def test_list_says_paused_with_reason_and_sync_off_as_information(staff, alpine_stub, monkeypatch):
    Destination.objects.alpine().pause(300, "Alpine refused the API key (401): Invalid API key")
    page = staff.get(reverse(CHANGELIST)).content.decode()
    assert "Delivery to Alpine is paused" in page and "Invalid API key" in page
    monkeypatch.setenv("ALPINE_SYNC_ENABLED", "false")
    page = staff.get(reverse(CHANGELIST)).content.decode()
    assert "Delivery to Alpine is off" in page and "delivered once it is on" in page


def test_detail_shows_the_signal_and_its_attempts(staff, alpine_stub):
    alpine_stub.faults.error_rate = 1.0
    row = queued(symbol="MSFT")
    handle_one_batch()
    page = staff.get(reverse("admin:sync_delivery_change", args=[row.pk])).content.decode()
    assert row.signal.signal_id in page and "MSFT" in page and row.signal.sha256 in page
    assert "could not obtain a database connection" in page and "scheduled" in page


def test_retry_now_action_delivers_and_records_a_manual_attempt(staff, alpine_stub):
    alpine_stub.faults.error_rate = 1.0
    rows = [queued() for _ in range(2)]
    handle_one_batch()
    alpine_stub.faults.error_rate = 0.0
    response = staff.post(reverse(CHANGELIST), {"action": "retry_now", "_selected_action": [rows[0].pk]}, follow=True)
    assert "1 delivered" in response.content.decode()
    rows[0].refresh_from_db()
    rows[1].refresh_from_db()
    assert rows[0].state == "delivered" and rows[0].attempts.first().trigger == "manual"
    assert rows[1].state == "retrying" and rows[1].attempts.count() == 1


def test_failed_manual_retry_keeps_the_rows_schedule(staff, alpine_stub, settings):
    settings.SIGNALHUB_SYNC_BACKOFF_BASE = settings.SIGNALHUB_SYNC_BACKOFF_CAP = 3600
    alpine_stub.faults.error_rate = 1.0
    row, other = queued(), queued()
    handle_one_batch()
    row.refresh_from_db()
    other.refresh_from_db()
    before = (row.state, row.attempt_count, row.next_attempt_at)
    other_before = (other.state, other.attempt_count, other.next_attempt_at)
    staff.post(reverse(CHANGELIST), {"action": "retry_now", "_selected_action": [row.pk]})
    row.refresh_from_db()
    other.refresh_from_db()
    assert (row.state, row.attempt_count, row.next_attempt_at) == before
    assert (other.state, other.attempt_count, other.next_attempt_at) == other_before
    assert row.attempts.filter(trigger="manual").count() == 1


def test_cancel_action_cancels_undelivered_but_not_delivered(staff, alpine_stub):
    delivered = queued()
    handle_one_batch()
    waiting = queued()
    staff.post(reverse(CHANGELIST), {"action": "cancel_deliveries", "_selected_action": [delivered.pk, waiting.pk]})
    assert Delivery.objects.get(pk=waiting.pk).state == "cancelled"
    assert Delivery.objects.get(pk=delivered.pk).state == "delivered"


def test_retry_dead_since_queues_a_background_task_that_requeues(staff, alpine_stub):
    row = queued(reasoning="short")
    handle_one_batch()
    since = timezone.now() - timedelta(hours=1)
    response = staff.post(reverse("admin:sync_delivery_retry_dead"), {"since": since.strftime("%Y-%m-%d %H:%M:%S")},
                          follow=True)
    assert "Queued in the background" in response.content.decode()
    assert OrmQ.objects.count() == 1
    assert retry_dead_since(since.isoformat(), 10) == 1  # what the cluster runs
    row.refresh_from_db()
    assert (row.state, row.attempt_count) == ("pending", 0)


def test_rows_are_read_only_and_destination_can_be_resumed(staff, alpine_stub):
    row = queued()
    assert staff.get(reverse("admin:sync_delivery_add")).status_code == 403
    page = staff.get(reverse("admin:sync_delivery_change", args=[row.pk])).content.decode()
    assert 'name="_save"' not in page
    destination = Destination.objects.alpine()
    destination.pause(300, "too many failures")
    staff.post(reverse("admin:sync_destination_changelist"), {"action": "resume_now", "_selected_action": [destination.pk]})
    assert not Destination.objects.alpine().is_paused()


def test_retry_dead_form_shows_its_bound(staff, settings):
    settings.SIGNALHUB_SYNC_REQUEUE_LIMIT = 1234
    page = staff.get(reverse("admin:sync_delivery_retry_dead")).content.decode()
    assert "at most 1234 at a time" in page and 'name="since"' in page
