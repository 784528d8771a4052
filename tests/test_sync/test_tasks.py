from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from signalhub.schedules import ensure_schedules
from sync.models import Delivery, DeliveryAttempt
from sync.outbox import enqueue_deliveries
from sync.status import sync_summary
from sync.tasks import deliver_now, prune_attempts
from tests.factories import make_signal

pytestmark = pytest.mark.django_db


def test_schedules_are_registered_once_by_name():
    ensure_schedules()
    ensure_schedules()
    deliver = Schedule.objects.get(name="signalhub.sync.deliver")
    assert (deliver.func, deliver.minutes) == ("sync.tasks.deliver_for_a_minute", 1)
    assert Schedule.objects.filter(name="signalhub.sync.prune_attempts").count() == 1


def test_prune_deletes_old_attempts_and_queues_signals_without_delivery(settings):
    settings.SIGNALHUB_SYNC_ATTEMPT_RETENTION_DAYS = 7
    now = timezone.now()
    for age in (1, 8):
        started = now - timedelta(days=age)
        DeliveryAttempt.objects.create(trigger="test", started_at=started, finished_at=started, duration_ms=1,
                                       status_code=201)
    make_signal()
    assert prune_attempts(now) == {"pruned": 1, "queued": 1}
    assert DeliveryAttempt.objects.count() == 1 and Delivery.objects.count() == 1


def test_push_queues_a_delivery_task_after_commit_only(settings, django_capture_on_commit_callbacks):
    settings.SIGNALHUB_SYNC_PUSH = True
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            enqueue_deliveries([make_signal().signal_id])
            assert OrmQ.objects.count() == 0
    assert len(callbacks) == 1 and OrmQ.objects.count() == 1


def test_push_is_off_by_default(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        enqueue_deliveries([make_signal().signal_id])
    assert callbacks == [] and OrmQ.objects.count() == 0


def test_deliver_now_task_delivers_what_is_due(alpine_stub):
    enqueue_deliveries([make_signal().signal_id for _ in range(3)])
    assert deliver_now()["delivered"] == 3


def test_summary_reports_counts_age_and_sync_off_as_information(alpine_stub, monkeypatch):
    enqueue_deliveries([make_signal().signal_id])
    summary = sync_summary()
    assert summary["counts"]["pending"] == 1 and summary["oldest_undelivered_age_seconds"] >= 0
    assert (summary["enabled"], summary["configured"], summary["paused"], summary["dead"]) == (True, True, False, 0)
    monkeypatch.delenv("ALPINE_API_URL")
    summary = sync_summary()
    assert summary["configured"] is False and summary["off_reason"] == "sync off: ALPINE_API_URL is not set"
