"""The journal's files: private modes, regular files only, never through a symbolic link."""

import io
import json
import logging
import os
import stat
import threading

import pytest
from django.core.management import CommandError, call_command

from signals.ingest import JournalUnavailable, flush_pending, get_ingestor, log_signal
from signals.ledger.validation import clean_signal
from signals.models import Signal
from signals.writepath import journal
from signals.writepath.recovery import replay_dead_segments
from tests.factories import signal_data

pytestmark = pytest.mark.django_db(transaction=True)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def lines(*signal_ids):
    return b"".join(journal.encode(clean_signal(signal_data(signal_id=signal_id))) for signal_id in signal_ids)


def test_the_journal_directory_is_0700_and_its_files_0600(journal_dir, settings):
    old_umask = os.umask(0o022)  # a common umask, which leaves files readable by all
    try:
        settings.SIGNALHUB_BATCH_SIZE = 1_000_000
        settings.SIGNALHUB_BATCH_TIMEOUT = 3600
        log_signal(signal_data(signal_id="MODE-1"))
        assert flush_pending(timeout=20) == 1
        segment = get_ingestor().active.path
        done = segment.with_name(segment.name + journal.DONE_SUFFIX)
        assert (mode(journal_dir), mode(segment), mode(done)) == (0o700, 0o600, 0o600)
    finally:
        os.umask(old_umask)


def test_a_symlinked_journal_directory_is_refused_and_reported(tmp_path, settings, journal_dir):
    real = tmp_path / "elsewhere"
    real.mkdir()
    link = tmp_path / "journal-link"
    link.symlink_to(real)
    settings.SIGNALHUB_JOURNAL_DIR = link
    with pytest.raises(JournalUnavailable, match="symbolic link") as refused:
        log_signal(signal_data(signal_id="LINKED"))
    assert isinstance(refused.value, OSError)
    assert get_ingestor().appended == 0
    assert list(real.iterdir()) == []

    (real / "deadhost-1-abcd-000001.seg").write_bytes(lines("LINKED-DEAD"))
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("flush_signals", stdout=out, stderr=err)
    assert failed.value.returncode == 2
    assert "symbolic link" in err.getvalue()
    assert not Signal.objects.exists()
    assert "symbolic link" in journal.backlog_stats()["problem"]


def test_recovery_skips_segments_that_are_links_or_fifos_and_says_so(journal_dir, tmp_path, caplog):
    journal_dir.mkdir(parents=True)
    (journal_dir / "deadhost-1-abcd-000001.seg").write_bytes(lines("REAL-1", "REAL-2"))
    outside = tmp_path / "outside.seg"
    outside.write_bytes(lines("VIA-LINK"))
    (journal_dir / "deadhost-2-abcd-000001.seg").symlink_to(outside)
    os.mkfifo(journal_dir / "deadhost-3-abcd-000001.seg")

    finished = []
    # A FIFO opened for reading would block this thread forever: run it where the test can time it out.
    worker = threading.Thread(target=lambda: finished.append(replay_dead_segments()), daemon=True)
    with caplog.at_level(logging.WARNING):
        worker.start()
        worker.join(timeout=60)
    assert finished, "recovery blocked on a non-regular file"
    report = finished[0]
    assert (report.written["stored"], report.segments_replayed, report.segments_failed) == (2, 1, 0)
    assert set(Signal.objects.values_list("signal_id", flat=True)) == {"REAL-1", "REAL-2"}
    skipped = [record.getMessage() for record in caplog.records if "not a regular file" in record.getMessage()]
    assert any("deadhost-2" in message for message in skipped) and any("deadhost-3" in message for message in skipped)
    assert outside.exists() and journal.decode(outside.read_bytes().rstrip(b"\n"))[1]["signal_id"] == "VIA-LINK"
    stats = journal.backlog_stats()
    assert (stats["segments"], stats["pending_signals"]) == (0, 0)


def test_a_done_file_planted_as_a_link_is_replaced_not_written_through(journal_dir, tmp_path):
    journal_dir.mkdir(parents=True)
    segment = journal_dir / "deadhost-1-abcd-000001.seg"
    segment.write_bytes(lines("DONE-1", "DONE-2"))
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    (journal_dir / (segment.name + journal.DONE_SUFFIX)).symlink_to(victim)

    report = replay_dead_segments()
    assert (report.written["stored"], report.segments_replayed, report.segments_failed) == (2, 1, 0)
    assert victim.read_bytes() == b"precious\n"
    assert not segment.exists() and not (journal_dir / (segment.name + journal.DONE_SUFFIX)).is_symlink()


def test_flush_signals_reports_counts_as_json_after_skipping_a_link(journal_dir, tmp_path):
    journal_dir.mkdir(parents=True)
    (journal_dir / "deadhost-1-abcd-000001.seg").write_bytes(lines("JSON-1"))
    (journal_dir / "deadhost-2-abcd-000001.seg").symlink_to(tmp_path / "missing.seg")
    out = io.StringIO()
    call_command("flush_signals", "--json", stdout=out)
    counts = json.loads(out.getvalue())
    assert (counts["stored"], counts["segments_replayed"], counts["segments_failed"]) == (1, 1, 0)
