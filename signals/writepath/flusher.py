"""The Ingestor: this process's journal segments, its counters and the flusher thread.

``append`` journals lines with one write; the flusher thread reads this
process's segments back from the last committed offset and writes them batch
by batch with ``signals.writepath.writer.write_journal_batch`` (checksums
checked, nothing decoded: the database unpacks the lines). A write is due when
``SIGNALHUB_BATCH_SIZE`` signals are pending, when the oldest has waited
``SIGNALHUB_BATCH_TIMEOUT`` seconds, on ``flush()``, and at exit. Because the
flusher reads the journal rather than a list in memory, memory stays flat
however far the database falls behind; if the database is down or locked, the
signals stay in the journal and the flusher retries with backoff.
"""

import errno
import logging
import os
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connection

from signals.writepath import journal
from signals.writepath.journal import JournalUnavailable
from signals.writepath.lanes import in_lanes, segment_writers
from signals.writepath.writer import write_journal_batch

logger = logging.getLogger(__name__)

IDLE_WAKE_SECONDS = 1.0  # the flusher looks at the clock at least this often
FIRST_RETRY_SECONDS = 0.5
# The write() of each journal line releases the interpreter lock and takes it
# straight back, before a flusher waiting for it (on the other core) has woken;
# CPython counts that as a switch, so the flusher's wait starts over and it can
# starve for as long as signals keep coming. While a large backlog builds up,
# one call in YIELD_EVERY sleeps YIELD_SECONDS so the flusher gets the lock. It
# does not wait on the database: the sleep is fixed, and skipped while the
# flusher is backing off. Not from a small backlog: the caller would then wait
# to get the lock back from the flusher, which costs log_signal's latency more
# than the backlog gains.
YIELD_BACKLOG = 20_000
YIELD_EVERY = 128
YIELD_SECONDS = 0.00005


class Ingestor:
    """This process's journal segments, counters and flusher thread."""

    def __init__(self, clock=time.time, on_start=None):
        self.clock = clock
        self.on_start = on_start  # called once the flusher thread runs (the process-wide one's exit hooks)
        self.pid = os.getpid()
        self.lock = threading.Lock()  # segments and counters; held only for a write() or bookkeeping
        self.pass_lock = threading.Lock()  # one flush pass at a time
        self.done = threading.Condition()  # notified after every pass
        self.wake = threading.Event()
        self.segments: list[journal.OwnedSegment] = []
        self.active: journal.OwnedSegment | None = None
        self.seq = 0
        self.appended = 0
        self.resolved = 0
        self.committed = 0
        self.first_pending_at: float | None = None
        self.force_target = 0
        self.retry_delay = 0.0
        self.next_retry_at = 0.0
        self.last_error: str | None = None
        self.thread: threading.Thread | None = None
        self.stopping = False

    # Appending ------------------------------------------------------------------------

    def append(self, lines: list[bytes]):
        """Journal ``lines`` with one write, or raise JournalUnavailable having journaled and counted none of them."""
        data = b"".join(lines)
        with self.lock:
            try:
                segment = self._writable_segment(len(data))
                # On failure the segment is cut back to its last whole line (OwnedSegment.append).
                segment.append(data, fsync=settings.SIGNALHUB_JOURNAL_FSYNC == "always")
            except JournalUnavailable:
                raise
            except OSError as exc:
                raise JournalUnavailable(
                    exc.errno or errno.EIO, f"the journal could not take {len(lines)} signal(s), none was journaled: "
                    f"{exc.strerror or exc}", str(journal.journal_dir())) from exc
            # Counted only once the lines are in the file: a failed write leaves every count as it was.
            if self.appended == self.resolved:
                self.first_pending_at = self.clock()
            self.appended += len(lines)
            pending = self.appended - self.resolved
        if pending >= settings.SIGNALHUB_BATCH_SIZE:
            self.wake.set()
            if pending >= YIELD_BACKLOG and not self.appended % YIELD_EVERY and not self.retry_delay:
                # Hand the interpreter lock to the flusher for a moment (see YIELD_BACKLOG).
                time.sleep(YIELD_SECONDS)
        if self.thread is None:
            try:
                self.start()
            except RuntimeError as exc:
                # The interpreter is shutting down: the line is journaled, and the
                # periodic flush stores it once this process is gone.
                logger.warning("no flusher thread (%s); the signal stays in the journal", exc)

    def _writable_segment(self, incoming_bytes) -> journal.OwnedSegment:
        active = self.active
        if active is None or (active.size and active.size + incoming_bytes > settings.SIGNALHUB_JOURNAL_SEGMENT_BYTES):
            if active is not None:
                # Sealed: no more appends; the flusher syncs it (batch policy) and
                # retires it once every line is stored.
                active.sealed = True
            self.seq += 1
            active = journal.create_segment(journal.journal_dir(), self.seq,
                                            fsync_dir=settings.SIGNALHUB_JOURNAL_FSYNC != "never")
            self.segments.append(active)
            self.active = active
        return active

    @property
    def pending(self):
        return self.appended - self.resolved

    # The flusher ------------------------------------------------------------------------

    def start(self):
        with self.lock:
            if self.thread is not None:
                return
            thread = threading.Thread(target=self._run, name="signalhub-flusher", daemon=True)
            thread.start()
            self.thread = thread
        if self.on_start is not None:
            self.on_start()

    def _run(self):
        try:
            while not self.stopping:
                self.wake.wait(self._wait_seconds())
                self.wake.clear()
                if self.stopping:
                    break
                self.run_pass()
        finally:
            # This thread's own connection (Django keeps one per thread).
            connection.close()

    def _wait_seconds(self):
        now = time.monotonic()
        if self.next_retry_at > now:
            return min(self.next_retry_at - now, IDLE_WAKE_SECONDS)
        first = self.first_pending_at
        if first is None:
            return IDLE_WAKE_SECONDS
        return min(max(first + settings.SIGNALHUB_BATCH_TIMEOUT - self.clock(), 0.01), IDLE_WAKE_SECONDS)

    def is_due(self) -> bool:
        if self.resolved < self.force_target:
            return True
        pending = self.appended - self.resolved
        if pending >= settings.SIGNALHUB_BATCH_SIZE:
            return True
        first = self.first_pending_at
        return pending > 0 and first is not None and self.clock() - first >= settings.SIGNALHUB_BATCH_TIMEOUT

    def run_pass(self) -> bool:
        """Write what is due; return True if a write was attempted and succeeded.

        Database errors are logged and leave everything in the journal; the next
        attempt waits 0.5 s, doubling up to ``SIGNALHUB_FLUSH_RETRY_MAX``.
        """
        with self.pass_lock:
            try:
                self._sync_and_rotate()
                if not self.is_due() or time.monotonic() < self.next_retry_at:
                    return False
                self.write_pending()
            except (DatabaseError, OSError) as exc:
                self._back_off(exc)
                return False
            except Exception as exc:
                logger.exception("flushing the journal failed; the signals stay in it")
                self._back_off(exc)
                return False
            finally:
                with self.done:
                    self.done.notify_all()
            self.retry_delay, self.next_retry_at, self.last_error = 0.0, 0.0, None
            return True

    def _back_off(self, exc):
        self.retry_delay = min(max(FIRST_RETRY_SECONDS, self.retry_delay * 2), settings.SIGNALHUB_FLUSH_RETRY_MAX)
        self.next_retry_at = time.monotonic() + self.retry_delay
        self.last_error = str(exc)
        logger.warning("could not write %d pending signals (%s); they stay in the journal, retrying in %.1f s",
                       self.pending, exc, self.retry_delay)
        # A broken connection must not be reused by the next attempt.
        connection.close()

    def write_pending(self) -> dict:
        """Write every line appended so far, batch by batch, oldest segment first; return the counts.

        On PostgreSQL a backlog of several segments is written by up to
        ``SIGNALHUB_FLUSH_WRITERS`` connections at once, one segment each
        (``signals.writepath.lanes.in_lanes``); within a segment, batches go in order.
        """
        with self.lock:
            snapshot = [(segment, segment.size) for segment in self.segments if segment.read_offset < segment.size]
        # Counts only: keeping every stored id of a long backlog would grow with it.
        counts = dict.fromkeys(("stored", "duplicates", "conflicts", "quarantined"), 0)
        batch_max = max(settings.SIGNALHUB_BATCH_MAX, settings.SIGNALHUB_BATCH_SIZE)

        def write_segment(item):
            segment, size = item
            while segment.read_offset < size:
                batch = write_journal_batch(segment.reader(), segment.name, segment.read_offset, size,
                                            max_lines=batch_max, final=False)
                if batch is None:
                    break
                written, end, count = batch
                # Counted as soon as the batch has committed, whatever happens to the done file next.
                with self.lock:
                    self.resolved += count
                    self.committed += written.stored
                    if self.resolved == self.appended:
                        self.first_pending_at = None
                    for key, value in written.as_dict().items():
                        counts[key] += value
                # After the commit, never before: the done offset only moves over stored lines.
                try:
                    segment.mark_done(end)
                except OSError as exc:
                    # A full disk must not undo the counts of a committed batch: flush_pending
                    # would wait for lines already stored, and the exit log call them lost.
                    # The done file lags; a replay after a crash counts those lines as duplicates.
                    segment.read_offset = end
                    logger.warning("could not record the done offset of journal segment %s (%s); its stored "
                                   "lines would be replayed as duplicates after a crash", segment.name, exc)

        try:
            in_lanes(write_segment, snapshot, segment_writers())
        finally:
            self._retire_finished()
        return counts

    def _sync_and_rotate(self):
        # batch: a sealed segment is synced once, here, never on log_signal's
        # path. Syncing the active segment too would stall appends while the
        # file system commits.
        if settings.SIGNALHUB_JOURNAL_FSYNC == "batch":
            for segment in list(self.segments):
                if segment.sealed and segment.fd is not None and segment.synced_size < segment.size:
                    segment.sync()
        self._retire_finished(age_limit=settings.SIGNALHUB_JOURNAL_SEGMENT_SECONDS)

    def _retire_finished(self, age_limit=None):
        with self.lock:
            for segment in list(self.segments):
                finished = segment.read_offset == segment.size
                too_old = age_limit is not None and time.monotonic() - segment.created >= age_limit
                if segment is self.active and finished and too_old:
                    # Everything in it is stored and it is old: start afresh on the next append.
                    segment.sealed = True
                    self.active = None
                if segment.sealed and finished:
                    segment.retire()
                    self.segments.remove(segment)

    # Flushing on demand and at exit -------------------------------------------------------

    def flush(self, timeout=None) -> int:
        """Write everything appended so far; return how many signals were stored meanwhile."""
        if self.thread is None:
            self.start()
        with self.lock:
            target = self.appended
            committed_before = self.committed
            self.force_target = max(self.force_target, target)
        # An explicit flush tries now, whatever the backoff says.
        self.next_retry_at = 0.0
        self.wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.done:
            while self.resolved < target and self.thread.is_alive():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self.done.wait(IDLE_WAKE_SECONDS if remaining is None else min(remaining, IDLE_WAKE_SECONDS))
                if self.resolved < target:
                    self.wake.set()
        return self.committed - committed_before

    def shutdown(self, timeout):
        """Flush (up to ``timeout`` seconds), stop the flusher and retire the segments if all is stored."""
        if self.pid != os.getpid():
            return
        if self.thread is not None and self.thread.is_alive():
            self.flush(timeout=timeout)
            self.stopping = True
            self.wake.set()
            self.thread.join(timeout=max(timeout, 1.0))
            if not self.thread.is_alive():
                # A process that goes on (SIGINT caught) starts a new flusher on its next signal.
                self.thread, self.stopping = None, False
        with self.lock:
            left = self.appended - self.resolved
            if left:
                logger.warning("%d signals not yet stored stay in the journal (%s); the periodic flush will store them",
                               left, journal.journal_dir())
                for segment in self.segments:
                    segment.close()
                # Handed over to recovery: the closed segments are no longer this process's.
                self.resolved = self.appended
                self.first_pending_at = None
            else:
                for segment in self.segments:
                    segment.retire()
            self.segments, self.active = [], None

    def forget_after_fork(self):
        """In a forked child: close the parent's descriptors without touching its files or locks."""
        for segment in self.segments:
            segment.close()
