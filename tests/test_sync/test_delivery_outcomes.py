"""Each kind of Alpine answer, against the stub over loopback."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from signals.models import Signal
from sync.delivery import handle_one_batch, PassResult
from sync.models import Delivery, DeliveryAttempt, Destination
from sync.outbox import enqueue_deliveries
from tests.factories import make_signal

pytestmark = pytest.mark.django_db


def queued(**overrides):
    signal = make_signal(**overrides)
    enqueue_deliveries([signal.signal_id])
    return Delivery.objects.get(signal=signal)


def corrupt_hash(signal):
    # The ledger refuses changes through the ORM; this simulates a row whose hash no longer matches.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Signal._meta.db_table} SET sha256 = %s WHERE id = %s", ["0" * 64, signal.pk])


def test_success_marks_delivered_with_alpine_id_and_logs_the_attempt(alpine_stub):
    row = queued(confidence=95.5, reasoning="A long enough rationale for Alpine's table.")
    assert handle_one_batch() is True
    row.refresh_from_db()
    assert row.state == "delivered" and row.delivered_at is not None
    assert row.alpine_signal_id == "1" and row.attempt_count == 1 and row.lease_owner == ""
    attempt = row.attempts.get()
    assert (attempt.status_code, attempt.trigger, attempt.error_class) == (201, "scheduled", "")
    stored = alpine_stub.state.stored_rows()
    assert [r["external_signal_id"] for r in stored] == [row.signal.signal_id]
    assert stored[0]["confidence"] == pytest.approx(0.955)  # Alpine's confidence/100 quirk
    assert Destination.objects.alpine().last_success_at is not None
    assert handle_one_batch() is False  # nothing left


def test_duplicate_answer_is_a_success(alpine_stub):
    row = queued()
    handle_one_batch()
    Delivery.objects.filter(pk=row.pk).update(state="pending", delivered_at=None, next_attempt_at=timezone.now())
    handle_one_batch()
    row.refresh_from_db()
    assert row.state == "delivered"
    assert row.attempts.first().response_body.count("duplicate") == 1
    assert len(alpine_stub.state.stored) == 1


def test_hash_mismatch_400_is_dead_at_once_with_the_reason(alpine_stub):
    row = queued()
    corrupt_hash(row.signal)
    handle_one_batch()
    row.refresh_from_db()
    assert (row.state, row.last_status_code, row.error_class) == ("dead", 400, "hash_mismatch")
    assert "Signal hash verification failed" in row.last_error
    assert not alpine_stub.state.stored


def test_schema_422_is_dead_at_once_with_the_field_named(alpine_stub):
    alpine_stub.faults.schema_error_rate = 1.0
    row = queued()
    handle_one_batch()
    row.refresh_from_db()
    assert (row.state, row.last_status_code, row.error_class) == ("dead", 422, "schema")
    assert "regime: Input should be a valid string" in row.last_error


def test_permanent_500_from_alpines_table_is_dead_with_its_reason(alpine_stub):
    row = queued(reasoning="too short")
    handle_one_batch()
    row.refresh_from_db()
    assert (row.state, row.last_status_code, row.error_class) == ("dead", 500, "rejected")
    assert "rationale too short" in row.last_error


def test_transient_500_is_retried_then_delivered(alpine_stub):
    alpine_stub.faults.error_rate = 1.0
    row = queued()
    handle_one_batch()
    row.refresh_from_db()
    assert (row.state, row.last_status_code, row.error_class, row.attempt_count) == ("retrying", 500, "server_error", 1)
    assert "could not obtain a database connection" in row.last_error
    alpine_stub.faults.error_rate = 0.0
    handle_one_batch()
    row.refresh_from_db()
    assert row.state == "delivered" and row.attempt_count == 2 and row.last_error == ""


def test_store_then_fail_is_delivered_once_as_a_duplicate(alpine_stub):
    alpine_stub.faults.store_then_fail_rate = 1.0
    row = queued()
    handle_one_batch()
    row.refresh_from_db()
    assert row.state == "retrying" and len(alpine_stub.state.stored) == 1
    handle_one_batch()
    row.refresh_from_db()
    assert row.state == "delivered" and len(alpine_stub.state.stored) == 1
    assert '"duplicate"' in row.attempts.first().response_body


@pytest.mark.parametrize("retry_after", ["120", "date"])
def test_retry_after_is_honoured_in_seconds_or_as_an_http_date(alpine_stub, retry_after):
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=300)
    alpine_stub.faults.retry_after = when.strftime("%a, %d %b %Y %H:%M:%S GMT") if retry_after == "date" else retry_after
    expected = 120 if retry_after == "120" else 300
    alpine_stub.faults.throttle_rate = 1.0
    row = queued()
    before = timezone.now()
    handle_one_batch()
    row.refresh_from_db()
    assert (row.state, row.last_status_code, row.error_class) == ("retrying", 429, "throttled")
    assert row.next_attempt_at >= before + timedelta(seconds=expected - 2)
    assert handle_one_batch() is False  # not due yet
    alpine_stub.faults.throttle_rate = 0.0
    with time_machine.travel(row.next_attempt_at + timedelta(seconds=1)):
        assert handle_one_batch() is True
    row.refresh_from_db()
    assert row.state == "delivered"


def test_timeout_and_connection_error_are_retried_with_status_zero(alpine_stub, settings):
    settings.ALPINE_TIMEOUT = 0.3
    alpine_stub.faults.slow_rate, alpine_stub.faults.slow_seconds = 1.0, 1.0
    row = queued()
    handle_one_batch()
    row.refresh_from_db()
    assert (row.state, row.last_status_code, row.error_class) == ("retrying", 0, "timeout")
    alpine_stub.stop()
    handle_one_batch()
    row.refresh_from_db()
    assert (row.state, row.last_status_code, row.error_class) == ("retrying", 0, "connection")
    assert row.attempts.count() == 2


def test_dead_after_max_attempts(alpine_stub, settings):
    settings.SIGNALHUB_SYNC_MAX_ATTEMPTS = 3
    settings.SIGNALHUB_SYNC_PAUSE_AFTER_FAILURES = 100
    alpine_stub.faults.unavailable_rate, alpine_stub.faults.retry_after = 1.0, "0"
    row = queued()
    for _ in range(5):
        handle_one_batch()
    row.refresh_from_db()
    assert (row.state, row.attempt_count) == ("dead", 3)
    assert "gave up after 3 attempts" in row.last_error


def test_dead_after_max_age_since_the_first_attempt(alpine_stub, settings):
    settings.SIGNALHUB_SYNC_MAX_AGE = 3600
    alpine_stub.faults.error_rate = 1.0
    row = queued()
    handle_one_batch()
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        handle_one_batch()
    row.refresh_from_db()
    assert row.state == "dead" and "after the first attempt" in row.last_error


def test_401_pauses_delivery_without_counting_and_a_new_key_resumes(alpine_stub, monkeypatch):
    monkeypatch.setenv("ARGO_API_KEY", "wrong-key-wrong-key-wrong")
    rows = [queued() for _ in range(3)]
    handle_one_batch()
    destination = Destination.objects.alpine()
    assert destination.is_paused() and "Invalid API key" in destination.pause_reason
    for row in rows:
        row.refresh_from_db()
        assert row.state == "pending" and row.attempt_count == 0 and row.lease_owner == ""
    # Requests already in flight when the first 401 came back are recorded on their rows too.
    sent = DeliveryAttempt.objects.filter(status_code=401).count()
    assert sent >= 1 and Delivery.objects.filter(last_status_code=401, error_class="auth").count() == sent
    assert not Delivery.objects.filter(state="dead").exists()
    result = PassResult()
    assert handle_one_batch(result=result) is False
    assert result.skipped_reason.startswith("paused until")
    monkeypatch.setenv("ARGO_API_KEY", alpine_stub.state.key)  # the key is fixed
    assert handle_one_batch() is True
    assert Delivery.objects.filter(state="delivered").count() == 3
    assert not Destination.objects.alpine().is_paused()


def test_401_pause_ends_after_its_time_and_resume_lifts_it(alpine_stub, monkeypatch, settings):
    monkeypatch.setenv("ARGO_API_KEY", "wrong-key-wrong-key-wrong")
    row = queued()
    handle_one_batch()
    alpine_stub.state.key = "wrong-key-wrong-key-wrong"  # Alpine's key changed to ours instead
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.SIGNALHUB_SYNC_AUTH_PAUSE_SECONDS + 1)):
        assert handle_one_batch() is True
    row.refresh_from_db()
    assert row.state == "delivered"
    monkeypatch.setenv("ARGO_API_KEY", "another-wrong-key-000000")
    queued()
    handle_one_batch()
    destination = Destination.objects.alpine()
    assert destination.is_paused()
    destination.resume()
    assert not Destination.objects.alpine().is_paused()


def test_404_pauses_delivery(alpine_stub, monkeypatch):
    monkeypatch.setenv("ALPINE_API_URL", alpine_stub.url + "/wrong-prefix")
    row = queued()
    handle_one_batch()
    row.refresh_from_db()
    destination = Destination.objects.alpine()
    assert destination.is_paused() and "check ALPINE_API_URL" in destination.pause_reason
    assert row.state == "pending" and row.attempt_count == 0


def test_many_failures_in_a_row_pause_the_destination_briefly(alpine_stub, settings):
    settings.SIGNALHUB_SYNC_PAUSE_AFTER_FAILURES = 5
    settings.SIGNALHUB_SYNC_PAUSE_SECONDS = 30
    alpine_stub.faults.error_rate = 1.0
    for _ in range(6):
        queued()
    handle_one_batch()
    destination = Destination.objects.alpine()
    assert destination.is_paused() and "failed attempts in a row" in destination.pause_reason
    posts = sum(alpine_stub.state.posts_by_hash.values())
    assert handle_one_batch() is False
    assert sum(alpine_stub.state.posts_by_hash.values()) == posts
    alpine_stub.faults.error_rate = 0.0
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        handle_one_batch()
    assert Delivery.objects.filter(state="delivered").count() == 6


def test_sync_off_leaves_rows_pending_and_says_so(alpine_stub, monkeypatch):
    monkeypatch.setenv("ALPINE_SYNC_ENABLED", "false")
    row = queued()
    result = PassResult()
    assert handle_one_batch(result=result) is False
    assert result.skipped_reason == "sync off: ALPINE_SYNC_ENABLED is false"
    row.refresh_from_db()
    assert row.state == "pending" and not alpine_stub.state.posts_by_hash
    monkeypatch.delenv("ALPINE_SYNC_ENABLED")
    handle_one_batch()
    row.refresh_from_db()
    assert row.state == "delivered"


def test_a_pass_that_fails_inside_signalhub_parks_its_rows(alpine_stub, monkeypatch):
    row = queued()

    def broken(*args, **kwargs):
        raise RuntimeError("bug while recording")

    monkeypatch.setattr("sync.delivery._record", broken)
    assert handle_one_batch() is True
    row.refresh_from_db()
    assert (row.state, row.error_class, row.lease_owner) == ("retrying", "internal", "")
    assert row.next_attempt_at > timezone.now() + timedelta(minutes=30)
    assert handle_one_batch() is False  # parked, not crash-looping


def test_every_hash_vector_signal_is_accepted_by_the_stub(alpine_stub):
    # The body SignalHub builds verifies against Alpine's formula (a 400 would mean it does not).
    rows = [queued(target_price=None, stop_price=None, confidence=60.0, entry_price=1.2345e-05,
                   symbol="SHIB-USD", strategy="momentum"),
            queued(symbol="NESN.SW", entry_price=91234.12, timestamp=datetime(2025, 11, 18, 14, 30, 0, 123456, tzinfo=UTC))]
    handle_one_batch()
    assert {r.state for r in Delivery.objects.filter(pk__in=[r.pk for r in rows])} == {"delivered"}
    assert DeliveryAttempt.objects.filter(status_code=400).count() == 0


def test_any_500_for_a_row_alpines_rules_refuse_is_dead_with_both_reasons(alpine_stub):
    alpine_stub.faults.error_rate = 1.0  # the 500 itself reads as transient
    row = queued(reasoning="short")
    handle_one_batch()
    row.refresh_from_db()
    assert (row.state, row.error_class) == ("dead", "rejected")
    assert "rationale too short (under 20 characters)" in row.last_error
    assert "could not obtain a database connection" in row.last_error
