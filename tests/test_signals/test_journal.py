"""Journal segments: ownership by lock, rotation, retirement, torn and corrupt lines, fork."""

import os
import signal

import pytest

from signals.ingest import flush_pending, get_ingestor, log_signal
from signals.ledger.validation import clean_signal
from signals.models import QuarantinedRecord, Signal
from signals.writepath import journal
from signals.writepath.recovery import replay_dead_segments
from tests.factories import signal_data
from tests.support import acked, child_env, start_child

pytestmark = pytest.mark.django_db(transaction=True)


def dead_segment(journal_dir, lines: list[bytes], name="deadhost-1-abcd-000001.seg"):
    """Write a segment as a dead owner would have left it (nobody holds its lock)."""
    journal_dir.mkdir(parents=True, exist_ok=True)
    path = journal_dir / name
    path.write_bytes(b"".join(lines))
    return path


def line_for(**overrides):
    return journal.encode(clean_signal(signal_data(**overrides)))


def test_corrupt_line_is_quarantined_and_the_lines_after_it_are_stored(journal_dir):
    good = line_for(signal_id="J-1")
    damaged = bytearray(line_for(signal_id="J-2"))
    damaged[30] ^= 0x01  # one flipped bit inside the JSON
    path = dead_segment(journal_dir, [good, bytes(damaged), line_for(signal_id="J-3")])
    report = replay_dead_segments()
    assert report.written["quarantined"] == 1 and report.written["stored"] == 2
    assert set(Signal.objects.values_list("signal_id", flat=True)) == {"J-1", "J-3"}
    record = QuarantinedRecord.objects.get()
    assert "checksum" in record.reason and record.source == f"{path.name}@{len(good)}"
    assert not path.exists()


def test_torn_last_line_is_quarantined_and_nothing_before_it_is_lost(journal_dir):
    lines = [line_for(signal_id=f"T-{n}") for n in range(3)]
    torn = line_for(signal_id="T-torn")[:40]
    dead_segment(journal_dir, [*lines, torn])
    report = replay_dead_segments()
    assert report.written["stored"] == 3 and report.written["quarantined"] == 1
    assert "torn last line" in QuarantinedRecord.objects.get().reason
    assert not Signal.objects.filter(signal_id="T-torn").exists()


def test_replay_resumes_at_the_done_offset_and_counts_replays_as_duplicates(journal_dir):
    lines = [line_for(signal_id=f"R-{n}") for n in range(4)]
    path = dead_segment(journal_dir, lines)
    # The owner had stored the first two and recorded it; the third was stored but not recorded.
    (journal_dir / (path.name + journal.DONE_SUFFIX)).write_bytes(b"%020d\n" % (len(lines[0]) + len(lines[1])))
    from signals.writepath.writer import Incoming, write_batch

    write_batch([Incoming(journal.decode(line[:-1])[1], "owner") for line in lines[:3]])
    report = replay_dead_segments()
    assert report.written["duplicates"] == 1 and report.written["stored"] == 1
    assert Signal.objects.count() == 4
    assert list(journal_dir.iterdir()) == []


def test_a_segment_is_not_claimed_while_its_owner_holds_the_lock(journal_dir):
    log_signal(signal_data(signal_id="OWN-1"))
    ingestor = get_ingestor()
    path = ingestor.active.path
    assert journal.try_claim(path) is None
    assert replay_dead_segments().segments_live == 1
    flush_pending(timeout=20)
    assert Signal.objects.filter(signal_id="OWN-1").count() == 1


def test_segments_rotate_by_size_and_are_retired_once_stored(journal_dir, settings):
    settings.SIGNALHUB_JOURNAL_SEGMENT_BYTES = 4096
    settings.SIGNALHUB_BATCH_TIMEOUT = 3600
    settings.SIGNALHUB_BATCH_SIZE = 10_000
    for _ in range(40):
        log_signal(signal_data())
    assert len(journal.segment_paths(journal_dir)) >= 3
    assert flush_pending(timeout=20) == 40
    # Only the active segment is left, its lines all stored.
    assert len(journal.segment_paths(journal_dir)) == 1
    assert journal.backlog_stats()["pending_signals"] == 0


def test_backlog_stats_counts_pending_signals_and_their_age(journal_dir, settings):
    settings.SIGNALHUB_BATCH_TIMEOUT = 3600
    dead_segment(journal_dir, [line_for(), line_for()])
    stats = journal.backlog_stats()
    assert stats["pending_signals"] == 2 and stats["segments"] == 1
    assert stats["oldest_pending_age_seconds"] is not None and stats["oldest_pending_age_seconds"] >= 0
    assert stats["directory"] == str(journal_dir) and stats["quarantined_records"] == 0
    replay_dead_segments()
    assert journal.backlog_stats()["pending_signals"] == 0


def test_a_forked_child_writes_its_own_segment_never_the_parents(journal_dir, settings):
    settings.SIGNALHUB_BATCH_TIMEOUT = 3600
    log_signal(signal_data(signal_id="PARENT-1"))
    parent_segment = get_ingestor().active
    size_before = os.path.getsize(parent_segment.path)
    pid = os.fork()
    if pid == 0:  # the child: log one signal and vanish without cleanup
        try:
            log_signal(signal_data(signal_id="CHILD-1"))
            code = 0 if get_ingestor().active.path != parent_segment.path else 3
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.path.getsize(parent_segment.path) == size_before
    # The parent still owns its segment (the child's exit did not release the lock).
    assert journal.try_claim(parent_segment.path) is None
    # The child's segment is orphaned: recovery stores it; the parent flushes its own.
    assert replay_dead_segments().segments_replayed == 1
    flush_pending(timeout=20)
    assert set(Signal.objects.values_list("signal_id", flat=True)) == {"PARENT-1", "CHILD-1"}


def test_acknowledged_ids_of_a_killed_child_are_replayed_once_even_twice_flushed(journal_dir):
    env = child_env(journal_dir, SIGNALHUB_BATCH_SIZE=3, SIGNALHUB_BATCH_TIMEOUT=3600)
    child = start_child(journal_dir, "--prefix", "TWICE", "--count", "10", "--then", "die", env=env)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    ids = acked(out)
    replay_dead_segments()
    replay_dead_segments()
    assert Signal.objects.filter(signal_id__in=ids).count() == 10


def test_flush_signals_command_prints_counts(journal_dir):
    import io
    import json

    from django.core.management import call_command

    dead_segment(journal_dir, [line_for(signal_id="CMD-1"), line_for(signal_id="CMD-2"), b"garbage\n"])
    out = io.StringIO()
    call_command("flush_signals", "--json", stdout=out)
    counts = json.loads(out.getvalue())
    assert (counts["stored"], counts["quarantined"], counts["segments_replayed"]) == (2, 1, 1)
    out = io.StringIO()
    call_command("flush_signals", stdout=out)
    assert out.getvalue().startswith("stored 0, duplicates 0, conflicts 0, quarantined 0")
