"""verify_signals' write path probe (no trace left), journal health and Alpine's health endpoint."""

import tempfile
from datetime import timedelta

import pytest
from django.utils import timezone

from signalhub import reports
from signals.ledger.validation import clean_signal
from signals.models import QuarantinedRecord, Signal, SignalConflict
from signals.operations import verification
from signals.writepath import journal
from sync import health
from sync.models import Delivery, DeliveryAttempt, Destination
from tests.factories import signal_data
from tests.support import store_signals

PROBE = "the write path works end to end (probe, no trace left)"
JOURNALS = "journals healthy (writable, no stale segments)"
ALPINE = "Alpine configured and its health endpoint answering"


def traces(directory):
    """Everything the probe could leave behind: rows of every table it touches, and journal files."""
    rows = tuple(model._base_manager.count() for model in (Signal, Delivery, DeliveryAttempt, Destination,
                                                          SignalConflict, QuarantinedRecord))
    return rows, sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def by_name(checks):
    return {check.name: check for check in checks}


@pytest.mark.django_db(transaction=True, databases=["default", "archive"])
def test_the_probe_goes_through_the_real_write_path_and_leaves_no_trace(journal_dir, tmp_path, monkeypatch):
    store_signals(2, created_at=timezone.now() - timedelta(minutes=1))
    journal_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "probe-tmp"))
    (tmp_path / "probe-tmp").mkdir()
    before = traces(journal_dir)

    seen, left = verification.probe_write_path(timezone.now(), reports.PROBE_RELATED)

    # Inside its transaction the probe was stored as new, with its delivery row ...
    assert seen == {"result": {"stored": 1, "duplicates": 0, "conflicts": 0, "quarantined": 0},
                    "row": True, "delivery": True}
    # ... and after it nothing is left: no row, no delivery, no journal file, no temporary file.
    assert not left
    assert traces(journal_dir) == before
    assert list((tmp_path / "probe-tmp").iterdir()) == []
    assert not Signal.objects.filter(strategy=verification.PROBE_STRATEGY).exists()


@pytest.mark.django_db(databases=["default", "archive"])
def test_a_probe_that_cannot_journal_fails_with_the_reason(journal_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing" / "tmp"))
    [check] = [c for c in verification.write_path_checks(timezone.now()) if c.name == PROBE]
    assert check.status == verification.FAIL and "the probe failed" in check.reason
    assert not Signal.objects.exists()


@pytest.mark.django_db(databases=["default", "archive"])
def test_healthy_journals_pass(journal_dir):
    check = by_name(verification.write_path_checks(timezone.now()))[JOURNALS]
    assert check.status == verification.PASS and "0 segments, 0 signals pending" in check.reason


@pytest.mark.django_db(databases=["default", "archive"])
def test_an_unwritable_journal_directory_fails(journal_dir, settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.SIGNALHUB_JOURNAL_DIR = blocker / "journal"
    check = by_name(verification.write_path_checks(timezone.now()))[JOURNALS]
    assert check.status == verification.FAIL and "the journal directory is not usable" in check.reason


@pytest.mark.django_db(databases=["default", "archive"])
def test_a_stale_journal_backlog_fails_and_a_dead_owners_segment_warns(journal_dir):
    journal_dir.mkdir()
    # A segment nobody holds (its writer died), appended two minutes ago and never stored.
    line = journal.encode(clean_signal(signal_data()), now_ms=int((timezone.now().timestamp() - 120) * 1000))
    (journal_dir / "host-1-dead-000001.seg").write_bytes(line)

    check = by_name(verification.write_path_checks(timezone.now()))[JOURNALS]
    assert check.status == verification.FAIL
    assert "1 signals wait in" in check.reason and "the oldest for 120 s (over 60 s)" in check.reason
    assert check.details == ["host-1-dead-000001.seg"]

    fresh = journal.encode(clean_signal(signal_data()))
    (journal_dir / "host-1-dead-000001.seg").write_bytes(fresh)
    check = by_name(verification.write_path_checks(timezone.now()))[JOURNALS]
    assert check.status == verification.WARN and "the next flush replays them" in check.reason


@pytest.mark.django_db(databases=["default", "archive"])
def test_alpine_health_passes_against_the_real_stub(alpine_stub):
    [check] = health.sync_checks(timezone.now())
    assert check.name == ALPINE and check.status == verification.PASS
    assert check.reason == f"{alpine_stub.url}/api/v1/external-signals/sync/health: 200 healthy (Alpine Analytics - External Signal Sync)"


@pytest.mark.django_db(databases=["default", "archive"])
def test_alpine_not_answering_fails(alpine_stub):
    alpine_stub.stop()
    [check] = health.sync_checks(timezone.now())
    assert check.status == verification.FAIL and "cannot reach" in check.reason


@pytest.mark.django_db(databases=["default", "archive"])
def test_alpine_without_a_key_warns(alpine_stub, monkeypatch):
    monkeypatch.delenv("ARGO_API_KEY")
    [check] = health.sync_checks(timezone.now())
    assert check.status == verification.WARN and "ARGO_API_KEY is not set" in check.reason


@pytest.mark.django_db(databases=["default", "archive"])
def test_sync_off_warns_with_the_reason_and_does_not_fail_the_run(sync_off, journal_dir):
    [check] = health.sync_checks(timezone.now())
    assert check.status == verification.WARN
    assert check.reason == "sync off: ALPINE_API_URL is not set: signals wait as pending (not checked)"
    checks = reports.run_checks()
    assert verification.FAIL not in {c.status for c in checks if c.name in (ALPINE, PROBE, JOURNALS)}
