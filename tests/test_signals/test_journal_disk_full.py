"""A journal write that fails (a full disk) refuses the signal clearly and leaves the ingestor's counts true.

The disk is a real one: a 256 KiB tmpfs mounted for the test. Mounting
needs root; where the suite runs as root (CI and the development machine,
where it was checked to work) a failed mount fails the test rather than
skipping it.
"""

import errno
import logging
import os
import subprocess

import pytest

import signals.writepath.ingest
from signals.ingest import JournalUnavailable, flush_pending, get_ingestor, log_signal, log_signals
from signals.models import Signal
from signals.writepath import journal
from tests.factories import signal_data

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB file system of its own, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount_point)],
                   check=True, capture_output=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True, capture_output=True)


def fill(path):
    """Write a file at ``path`` until the disk is full; return its size."""
    block = b"\0" * 4096
    written = 0
    with open(path, "wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    # Room for less than one journal line: a few bytes the last block could not take.
    return written


@pytest.fixture
def journal_on_small_disk(small_disk, settings):
    settings.SIGNALHUB_JOURNAL_DIR = small_disk / "journal"
    # No flush between the appends: only the test's flush_pending writes.
    settings.SIGNALHUB_BATCH_SIZE = 1_000_000
    settings.SIGNALHUB_BATCH_TIMEOUT = 3600
    signals.writepath.ingest._ingestor = None
    yield small_disk / "journal"
    ingestor = signals.writepath.ingest._ingestor
    if ingestor is not None:
        ingestor.shutdown(timeout=5)
    signals.writepath.ingest._ingestor = None


def segment_bytes(directory):
    return {path.name: path.read_bytes() for path in journal.segment_paths(directory)}


def log_until_refused(prefix, limit=2000):
    """Log signals until the journal refuses one; return (ids journaled, counts just before the refusal, error)."""
    ingestor = get_ingestor()
    journaled = []
    for n in range(limit):
        counts = (ingestor.appended, ingestor.resolved, ingestor.committed, ingestor.pending)
        try:
            journaled.append(log_signal(signal_data(signal_id=f"{prefix}-{n:05d}")))
        except JournalUnavailable as exc:
            return journaled, counts, exc
    raise AssertionError(f"the journal took {limit} signals on a full disk")


@pytest.mark.parametrize("fsync", ["batch", "always"])
def test_a_full_disk_refuses_the_signal_and_leaves_counts_and_segment_as_they_were(
        journal_on_small_disk, settings, caplog, fsync):
    settings.SIGNALHUB_JOURNAL_FSYNC = fsync
    first = [log_signal(signal_data(signal_id=f"FULL-A-{n}")) for n in range(5)]
    ingestor = get_ingestor()
    filler = journal_on_small_disk.parent / "filler"
    fill(filler)

    # The last page of the segment may take a few more lines; then the disk refuses.
    more, counts, refused = log_until_refused("FULL-MORE")
    assert isinstance(refused, OSError) and refused.errno == errno.ENOSPC
    assert "journal" in str(refused) and "none was journaled" in str(refused)
    before = segment_bytes(journal_on_small_disk)
    with pytest.raises(JournalUnavailable):
        log_signals([signal_data(signal_id=f"FULL-BATCH-{n}") for n in range(3)])
    assert (ingestor.appended, ingestor.resolved, ingestor.committed, ingestor.pending) == counts
    assert counts[0] == len(first) + len(more)
    assert segment_bytes(journal_on_small_disk) == before  # no half line left behind

    # The disk has room again: the next signals are journaled and everything flushes at once.
    filler.unlink()
    later = [log_signal(signal_data(signal_id=f"FULL-B-{n}")) for n in range(3)]
    journaled = [*first, *more, *later]
    assert flush_pending(timeout=20) == len(journaled)
    assert ingestor.pending == 0
    assert sorted(Signal.objects.values_list("signal_id", flat=True)) == sorted(journaled)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="signals.writepath.flusher"):
        ingestor.shutdown(timeout=5)
    assert not [record for record in caplog.records if "not yet stored" in record.getMessage()]
    assert journal.segment_paths(journal_on_small_disk) == []


def test_a_full_disk_after_the_commit_leaves_the_stored_signals_counted(journal_on_small_disk, caplog):
    # The flusher commits, then cannot write the segment's done file (a new file needs a page).
    ids = [log_signal(signal_data(signal_id=f"DONE-{n}")) for n in range(5)]
    ingestor = get_ingestor()
    filler = journal_on_small_disk.parent / "filler"
    fill(filler)
    assert flush_pending(timeout=20) == 5  # not a wait of the whole timeout for signals already stored
    assert ingestor.pending == 0 and ingestor.last_error is None
    assert Signal.objects.filter(signal_id__in=ids).count() == 5

    filler.unlink()
    later = log_signal(signal_data(signal_id="DONE-LATER"))
    assert flush_pending(timeout=20) == 1 and Signal.objects.filter(signal_id=later).exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="signals.writepath.flusher"):
        ingestor.shutdown(timeout=5)
    assert not [record for record in caplog.records if "not yet stored" in record.getMessage()]
    assert journal.segment_paths(journal_on_small_disk) == []


def test_a_full_disk_when_a_new_segment_is_due_refuses_the_signal_and_recovers(journal_on_small_disk, settings):
    settings.SIGNALHUB_JOURNAL_SEGMENT_BYTES = 600  # a new segment every few lines
    first = [log_signal(signal_data(signal_id=f"ROT-A-{n}")) for n in range(6)]
    ingestor = get_ingestor()
    filler = journal_on_small_disk.parent / "filler"
    fill(filler)
    more, counts, _ = log_until_refused("ROT-MORE")
    for n in range(3):
        with pytest.raises(JournalUnavailable):
            log_signal(signal_data(signal_id=f"ROT-REFUSED-{n}"))
    assert (ingestor.appended, ingestor.resolved, ingestor.committed, ingestor.pending) == counts
    filler.unlink()
    later = [log_signal(signal_data(signal_id=f"ROT-B-{n}")) for n in range(4)]
    journaled = [*first, *more, *later]
    assert flush_pending(timeout=20) == len(journaled)
    assert ingestor.pending == 0
    assert sorted(Signal.objects.values_list("signal_id", flat=True)) == sorted(journaled)
