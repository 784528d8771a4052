"""A chaos run: thousands of signals through 5xx, timeouts, 429s, an outage and store-then-fail."""

import time

import pytest
from django.db.models import Count

from sync.delivery import drain
from sync.models import Delivery
from sync.outbox import enqueue_deliveries
from tests.factories import make_signal

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

DELIVERABLE = 2000
UNDELIVERABLE = 20


def test_chaos_run_ends_with_every_signal_stored_once_and_the_rest_dead_with_a_reason(alpine_stub, settings):
    settings.ALPINE_TIMEOUT = 0.3
    settings.SIGNALHUB_SYNC_CONCURRENCY = 8
    settings.SIGNALHUB_SYNC_BATCH_SIZE = 100
    settings.SIGNALHUB_SYNC_BACKOFF_BASE = 0.02
    settings.SIGNALHUB_SYNC_BACKOFF_CAP = 0.3
    settings.SIGNALHUB_SYNC_MAX_ATTEMPTS = 40
    settings.SIGNALHUB_SYNC_PAUSE_AFTER_FAILURES = 40
    settings.SIGNALHUB_SYNC_PAUSE_SECONDS = 0.3
    good = [make_signal() for _ in range(DELIVERABLE)]
    bad = [make_signal(reasoning="too short") for _ in range(UNDELIVERABLE)]
    assert enqueue_deliveries([s.signal_id for s in good + bad]) == DELIVERABLE + UNDELIVERABLE

    faults = alpine_stub.faults
    faults.error_rate = 0.05
    faults.store_then_fail_rate = 0.03
    faults.slow_rate, faults.slow_seconds = 0.01, 0.6  # beyond the client's timeout
    faults.throttle_rate = 0.03
    faults.unavailable_rate = 0.02
    faults.retry_after = "0"
    faults.outage_until = time.time() + 1.0  # everything 503 for the first second

    result = drain(max_seconds=180)

    states = dict(Delivery.objects.order_by().values_list("state").annotate(n=Count("pk")))
    assert states == {"delivered": DELIVERABLE, "dead": UNDELIVERABLE}, (states, result)
    assert not Delivery.objects.filter(state="sending").exists()
    stored = alpine_stub.state.stored_rows()
    assert len(stored) == DELIVERABLE
    assert {row["verification_hash"] for row in stored} == {s.sha256 for s in good}
    assert len({row["external_signal_id"] for row in stored}) == DELIVERABLE
    for row in Delivery.objects.filter(state="dead"):
        assert row.error_class == "rejected" and "rationale too short" in row.last_error
    # The faults really happened and were retried.
    answers = alpine_stub.state.answers
    assert answers[500] and answers[429] and answers[503]
    assert {"timeout", "server_error", "throttled"} <= set(result.errors)
