"""monitor_signals' write path and sync sections: a stale journal, conflicts, dead, paused, sync off."""

import json
from datetime import timedelta

import pytest
from django.db import connection

from signalhub import reports
from signals.ledger.validation import clean_signal
from signals.models import QuarantinedRecord, SignalConflict
from signals.operations import monitoring
from signals.writepath import journal
from sync import status
from sync.models import Delivery, Destination
from sync.outbox import enqueue_deliveries
from tests.factories import signal_data
from tests.support import store_signals
from tests.test_signals.monitor_support import NOW, monitor

pytestmark = [pytest.mark.django_db(databases=["default", "archive"]), pytest.mark.usefixtures("frozen_clock")]


@pytest.fixture
def sync_on(monkeypatch):
    """Delivery to Alpine switched on (the monitor never calls Alpine: nothing listens there)."""
    monkeypatch.setenv("ALPINE_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ARGO_API_KEY", "k" * 24)
    monkeypatch.delenv("ALPINE_SYNC_ENABLED", raising=False)
    monkeypatch.delenv("SIGNALHUB_CONFIG_FILE", raising=False)


@pytest.fixture
def flowing(journal_dir):
    """A steady flow over the last hour (no problem from the signals section) and an empty journal."""
    return store_signals(30, created_at=NOW - timedelta(minutes=59), step=timedelta(seconds=100), symbol="AAPL")


def codes(report):
    return {problem.code: problem.severity for problem in report.problems}


def journal_lines(directory, count, *, age):
    """Append ``count`` signals to a segment this process owns, as if appended ``age`` ago and not yet stored."""
    segment = journal.create_segment(directory, 1, fsync_dir=False)
    stamp = int((NOW - age).timestamp() * 1000)
    for _ in range(count):
        segment.append(journal.encode(clean_signal(signal_data()), now_ms=stamp), fsync=False)
    return segment


def deliveries(signals, state, **fields):
    enqueue_deliveries([signal.signal_id for signal in signals])
    Delivery.objects.filter(signal__in=signals).update(state=state, **fields)


# Write path ----------------------------------------------------------------------------------

def test_stale_journal_backlog_is_critical_exit_2(flowing, journal_dir, sync_off):
    segment = journal_lines(journal_dir, 3, age=timedelta(seconds=95))
    try:
        code, output = monitor()
    finally:
        segment.close()

    assert code == 2
    assert output.startswith("SIGNALHUB CRITICAL")
    assert "journal_backlog: 3 signals wait in the journal, the oldest for 95 s (over 60 s)" in output
    assert f"journal {journal_dir}: 3 signals pending in 1 segments, oldest 95 s" in output


def test_a_refused_journal_directory_is_critical(flowing, journal_dir, sync_off, settings, tmp_path):
    real = tmp_path / "real-journal"
    real.mkdir()
    link = tmp_path / "linked-journal"
    link.symlink_to(real)
    settings.SIGNALHUB_JOURNAL_DIR = link

    code, output = monitor()

    assert code == 2
    assert "journal_unusable: the journal cannot be used:" in output
    assert "symbolic link" in output


def test_journal_threshold_comes_from_settings_and_a_fresh_backlog_is_fine(flowing, journal_dir, sync_off, settings):
    settings.SIGNALHUB_MONITOR_JOURNAL_MAX_AGE = 120
    segment = journal_lines(journal_dir, 2, age=timedelta(seconds=95))
    try:
        report = reports.gather_report()
    finally:
        segment.close()
    assert report.exit_code == 0 and report.problems == []
    assert report.sections["write_path"]["pending_signals"] == 2
    assert report.sections["write_path"]["oldest_pending_age_seconds"] == 95.0


def test_conflicts_and_quarantined_records_are_warnings(flowing, sync_off):
    [signal] = store_signals(1, created_at=NOW - timedelta(minutes=1))
    SignalConflict.objects.create(signal_id=signal.signal_id, stored={"a": 1}, incoming={"a": 2},
                                  incoming_digest="0" * 64)
    QuarantinedRecord.objects.create(source="test@0", raw="{", reason="unreadable line", fingerprint="f" * 64)

    report = reports.gather_report()

    assert codes(report) == {"signal_conflicts": "warning", "quarantined_records": "warning"}
    assert report.exit_code == 1
    figures = report.sections["write_path"]
    assert (figures["conflicts"], figures["quarantined_records"]) == (1, 1)
    assert figures["conflicts_count"] == "exact"


def test_conflict_count_is_bounded_and_says_so(flowing):
    for n in range(3):
        SignalConflict.objects.create(signal_id=f"X-{n}", stored={}, incoming={"n": n}, incoming_digest=str(n) * 64)
    assert monitoring.bounded_count(SignalConflict.objects.all(), limit=2) == (2, "at least (over 2)")
    assert monitoring.bounded_count(SignalConflict.objects.all(), limit=3) == (3, "exact")


# Sync ----------------------------------------------------------------------------------------

def test_healthy_sync_reports_counts_and_no_problem(flowing, sync_on):
    deliveries(flowing[:20], Delivery.State.DELIVERED, delivered_at=NOW)
    deliveries(flowing[20:], Delivery.State.PENDING, queued_at=NOW - timedelta(minutes=5))

    code, output = monitor("--json")

    report = json.loads(output)
    assert code == 0 and report["problems"] == []
    sync = report["sections"]["sync"]
    assert sync["state"] == "on"
    assert sync["counts"] == {"pending": 10, "sending": 0, "retrying": 0, "delivered": 20, "dead": 0, "cancelled": 0}
    assert sync["counts_how"] == {"delivered": "exact", "others": "exact"}
    assert sync["oldest_undelivered_age_seconds"] == 300.0


def test_a_dead_delivery_is_a_warning_exit_1(flowing, sync_on):
    deliveries(flowing[:2], Delivery.State.DEAD)

    code, output = monitor()

    assert code == 1
    assert "WARNING dead_deliveries: 2 dead deliveries" in output
    assert "dead: 2" in output


def test_a_paused_destination_is_a_warning_naming_why(flowing, sync_on):
    Destination.objects.alpine().pause(600, "Alpine refused the key (401)", now=NOW)

    code, output = monitor()

    assert code == 1
    assert ("WARNING destination_paused: delivery to Alpine is paused until 2026-11-20 12:10:00 UTC: "
            "Alpine refused the key (401)") in output


def test_an_old_undelivered_signal_is_a_warning(flowing, sync_on, settings):
    deliveries(flowing[:3], Delivery.State.RETRYING, queued_at=NOW - timedelta(hours=2))

    report = reports.gather_report()
    assert codes(report) == {"undelivered_old": "warning"}
    assert "3 signals not yet delivered to Alpine, the oldest queued 2.0 h ago (over 1 h)" in report.problems[0].text

    settings.SIGNALHUB_MONITOR_UNDELIVERED_MAX_AGE = 3 * 3600
    assert reports.gather_report().problems == []


def test_sync_off_is_information_only_even_with_old_undelivered_signals(flowing, sync_off):
    deliveries(flowing, Delivery.State.PENDING, queued_at=NOW - timedelta(days=2))

    code, output = monitor()

    assert code == 0 and output.startswith("SIGNALHUB OK")
    assert "delivery to Alpine: sync off: ALPINE_API_URL is not set (information, not a problem" in output
    assert "pending 30" in output


def test_sync_switched_off_by_alpine_sync_enabled_is_information(flowing, sync_on, monkeypatch):
    monkeypatch.setenv("ALPINE_SYNC_ENABLED", "false")
    deliveries(flowing[:1], Delivery.State.DEAD)
    report = reports.gather_report()
    assert report.problems == [] and report.sections["sync"]["state"] == "sync off: ALPINE_SYNC_ENABLED is false"


def test_delivered_beyond_the_exact_bound_is_an_estimate(flowing, sync_on, monkeypatch):
    deliveries(flowing[:25], Delivery.State.DELIVERED, delivered_at=NOW)
    deliveries(flowing[25:], Delivery.State.DEAD)
    monkeypatch.setattr(status, "EXACT_TOTAL_UP_TO", 10)

    summary = status.sync_summary()

    assert summary["counts_how"]["delivered"].startswith(("estimate", "at least"))
    assert summary["counts"]["dead"] == 5  # the small states stay exact
    assert summary["counts"]["delivered"] >= 5


def _plan(queryset, aggregate="COUNT(*)"):
    sql, params = queryset.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be scanned anyway
            cursor.execute(f"EXPLAIN SELECT {aggregate} FROM ({sql}) AS counted", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN SELECT {aggregate} FROM ({sql})", params)
        return " ".join(str(row) for row in cursor.fetchall())


def test_small_state_counts_read_their_partial_indexes(flowing):
    deliveries(flowing[:3], Delivery.State.DEAD)
    dead = Delivery.objects.filter(status._literal_state('"sync_delivery"."state" = \'dead\''))
    cancelled = Delivery.objects.filter(status._literal_state('"sync_delivery"."state" = \'cancelled\''))
    undelivered = Delivery.objects.filter(status._literal_state(status.UNDELIVERED_SQL))
    assert "delivery_dead_idx" in _plan(dead)
    assert "delivery_cancelled_idx" in _plan(cancelled)
    assert any(name in _plan(undelivered) for name in ("delivery_due_idx", "delivery_undelivered_age_idx"))
