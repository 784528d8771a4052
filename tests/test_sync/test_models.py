"""Delivery's transitions, DeliveryQuerySet's table-level changes and Destination.record_pass."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sync.client import DEAD, RETRY, Outcome
from sync.models import Delivery, Destination
from sync.outbox import enqueue_deliveries
from tests.factories import make_signal

pytestmark = pytest.mark.django_db


def queued(**values):
    signal = make_signal()
    enqueue_deliveries([signal.signal_id])
    row = Delivery.objects.get(signal=signal)
    if values:
        Delivery.objects.filter(pk=row.pk).update(**values)
        row.refresh_from_db()
    return row


def claimed(owner="worker-a", attempt_count=1):
    return queued(state="sending", lease_owner=owner, lease_until=timezone.now() + timedelta(minutes=1),
                  attempt_count=attempt_count)


def test_a_transition_after_the_lease_was_taken_over_changes_nothing():
    row = claimed(owner="worker-a")
    Delivery.objects.filter(pk=row.pk).update(lease_owner="worker-b")
    failed = Outcome(DEAD, "schema", 422, "Alpine refused the body")
    assert row.mark_dead("worker-a", failed, timezone.now()) is False
    row.refresh_from_db()
    assert (row.state, row.lease_owner, row.last_error) == ("sending", "worker-b", "")


def test_a_scheduled_retry_clears_the_lease_and_keeps_the_first_attempt_time():
    row = claimed()
    first = timezone.now() - timedelta(hours=1)
    Delivery.objects.filter(pk=row.pk).update(first_attempt_at=first)
    now = timezone.now()
    outcome = Outcome(RETRY, "server_error", 503, "Alpine: busy", finished_at=now)
    assert row.schedule_retry("worker-a", outcome, now, now + timedelta(seconds=30)) is True
    row.refresh_from_db()
    assert (row.state, row.lease_owner, row.lease_until, row.last_status_code) == ("retrying", "", None, 503)
    assert (row.first_attempt_at, row.next_attempt_at) == (first, now + timedelta(seconds=30))


def test_a_released_row_goes_back_uncounted():
    first, again = claimed(attempt_count=1), claimed(attempt_count=3)
    assert first.release("worker-a") and again.release("worker-a")
    first.refresh_from_db()
    again.refresh_from_db()
    assert (first.state, first.attempt_count, again.state, again.attempt_count) == ("pending", 0, "retrying", 2)


def test_cancel_leaves_delivered_rows_and_rows_under_a_live_lease():
    waiting, dead, delivered, sending = (queued(), queued(state="dead"),
                                         queued(state="delivered", delivered_at=timezone.now()), claimed())
    expired = queued(state="sending", lease_owner="gone", lease_until=timezone.now() - timedelta(minutes=1))
    assert Delivery.objects.all().cancel() == 3
    states = dict(Delivery.objects.values_list("pk", "state"))
    assert [states[row.pk] for row in (waiting, dead, expired, delivered, sending)] == [
        "cancelled", "cancelled", "cancelled", "delivered", "sending"]
    assert Delivery.objects.get(pk=expired.pk).lease_owner == ""


def test_requeue_starts_rows_afresh_but_leaves_a_row_being_sent():
    dead = queued(state="dead", attempt_count=5, error_class="schema", last_error="refused",
                  first_attempt_at=timezone.now() - timedelta(days=1))
    sending = claimed()
    assert Delivery.objects.all().requeue() == 1
    dead.refresh_from_db()
    assert (dead.state, dead.attempt_count, dead.first_attempt_at, dead.error_class, dead.last_error) == (
        "pending", 0, None, "", "")
    assert Delivery.objects.get(pk=sending.pk).state == "sending"
    assert list(Delivery.objects.due().values_list("pk", flat=True)) == [dead.pk]


def test_dead_since_counts_only_dead_rows_last_tried_since_then():
    now = timezone.now()
    recent = queued(state="dead", last_attempt_at=now)
    queued(state="dead", last_attempt_at=now - timedelta(days=2))
    queued(state="retrying", last_attempt_at=now)
    assert list(Delivery.objects.dead_since(now - timedelta(days=1)).values_list("pk", flat=True)) == [recent.pk]


def test_failures_in_a_row_open_the_circuit_and_reset_the_count(settings):
    settings.SIGNALHUB_SYNC_PAUSE_AFTER_FAILURES, settings.SIGNALHUB_SYNC_PAUSE_SECONDS = 3, 60
    destination = Destination.objects.alpine()
    now = timezone.now()
    destination.record_pass(last_status_code=503, any_success=False, failures=2, last_error="busy", now=now)
    assert not destination.is_paused(now) and destination.consecutive_failures == 2
    destination.record_pass(last_status_code=503, any_success=False, failures=1, last_error="busy", now=now)
    destination.refresh_from_db()
    assert destination.paused_until == now + timedelta(seconds=60) and destination.consecutive_failures == 0
    assert destination.pause_reason == "3 failed attempts in a row; last: busy"


def test_a_success_records_only_the_failures_after_it():
    destination = Destination.objects.alpine()
    destination.record_pass(last_status_code=503, any_success=False, failures=4, last_error="busy")
    destination.record_pass(last_status_code=201, any_success=True, failures=1)
    destination.refresh_from_db()
    assert destination.consecutive_failures == 1 and destination.last_success_at is not None


def test_an_auth_pause_lifts_only_for_another_key(settings):
    destination = Destination.objects.alpine()
    destination.record_pass(last_status_code=401, any_success=False, failures=0, last_error="refused",
                            pause_reason="Alpine refused the API key (401)", key="old-key")
    assert destination.is_paused()
    assert destination.lift_pause_for_new_key("old-key") is False and destination.is_paused()
    assert destination.lift_pause_for_new_key("new-key") is True
    destination.refresh_from_db()
    assert not destination.is_paused() and destination.paused_key_fingerprint == ""
