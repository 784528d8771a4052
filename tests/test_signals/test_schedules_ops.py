"""The operations schedules: registered by name, importable, and their tasks do the work."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django_q.models import Schedule

from signalhub.schedules import all_specs, ensure_schedules, import_func
from signals import tasks
from signals.models import Signal
from tests.support import store_signals


def test_every_schedule_function_imports():
    specs = all_specs()
    assert {"signalhub.archive_signals", "signalhub.monitor_snapshot"} <= {spec.name for spec in specs}
    for spec in specs:
        assert callable(import_func(spec.func)), spec.func


@pytest.mark.django_db
def test_schedules_are_registered_once_by_name():
    ensure_schedules()
    ensure_schedules()
    archive = Schedule.objects.get(name="signalhub.archive_signals")
    assert archive.schedule_type == Schedule.CRON and archive.cron == "30 2 1 * *"
    assert Schedule.objects.filter(name="signalhub.monitor_snapshot").count() == 1


@pytest.mark.django_db(transaction=True, databases=["default", "archive"])
def test_monthly_archiving_moves_signals_older_than_the_configured_months(settings):
    settings.SIGNALHUB_ARCHIVE_MONTHS = 12
    now = datetime.now(UTC)
    store_signals(2, created_at=now - timedelta(days=800))
    store_signals(1, created_at=now - timedelta(days=10))
    assert "moved 2 signals" in tasks.archive_old_signals()
    assert Signal.objects.count() == 1 and Signal.objects.using("archive").count() == 2


@pytest.mark.django_db(databases=["default", "archive"])
def test_monthly_archiving_switched_off_moves_nothing(settings):
    settings.SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED = False
    store_signals(1, created_at=datetime.now(UTC) - timedelta(days=800))
    assert tasks.archive_old_signals() == "archiving switched off"
    assert Signal.objects.count() == 1


@pytest.mark.django_db(databases=["default", "archive"])
def test_monitor_snapshot_logs_the_status_line(caplog, journal_dir, sync_off):
    with caplog.at_level(logging.INFO, logger="signals.tasks"):
        assert tasks.log_monitor_snapshot() == "WARNING"  # an empty ledger: no signal in the last hour
    assert "SIGNALHUB WARNING - WARNING: no signal in the last hour" in caplog.text
