"""The durable write path: ``log_signal`` journals a signal, a background flusher stores it.

``log_signal`` validates, appends one line to this process's journal segment and
returns: it never waits on the database, and once it returns the signal
survives a SIGKILL of the process (the line is in the kernel's page cache; with
``SIGNALHUB_JOURNAL_FSYNC=always`` it also survives a power loss).

One flusher thread per process reads its own segments back from the last
committed offset and writes them batch by batch with
``signals.writepath.writer.write_journal_batch`` (checksums checked, nothing decoded:
the database unpacks the lines). A write
is due when ``SIGNALHUB_BATCH_SIZE`` signals are pending, when the oldest has
waited ``SIGNALHUB_BATCH_TIMEOUT`` seconds, on ``flush_pending()``, and at exit
(atexit, SIGTERM, SIGINT). Because the flusher reads the journal rather than a
list in memory, memory stays flat however far the database falls behind.
If the database is down or locked, the signals stay in the journal and the
flusher retries with backoff; what a dead process leaves behind is replayed by
``signals.writepath.recovery`` (the periodic flush and ``manage.py flush_signals``).
"""

import asyncio
import atexit
import errno
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DatabaseError, connection

from signals.ledger.validation import clean_signal
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
# starve for as long as signals keep coming (measured: a few hundred of 40,000
# stored while logging in some runs, most of them in others). While a large
# backlog builds up, one call in YIELD_EVERY sleeps YIELD_SECONDS so the
# flusher gets the lock. It does not wait on the database: the sleep is fixed,
# and skipped while the flusher is backing off. Not from a small backlog: the
# caller then waits to get the lock back from the flusher (measured at 5,000/s:
# p99 250 us from 1,000 pending, 90 us from 20,000).
YIELD_BACKLOG = 20_000
YIELD_EVERY = 128
YIELD_SECONDS = 0.00005


class Ingestor:
    """This process's journal segments, counters and flusher thread."""

    def __init__(self, clock=time.time):
        self.clock = clock
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
        _install_exit_hooks()

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
        # path. Syncing the active segment too (say every second) was measured
        # to stall appends for milliseconds while the file system commits.
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


# The process-wide ingestor ----------------------------------------------------------------

_ingestor: Ingestor | None = None
_ingestor_lock = threading.Lock()


def get_ingestor() -> Ingestor:
    global _ingestor
    ingestor = _ingestor
    if ingestor is None:
        with _ingestor_lock:
            if _ingestor is None:
                _ingestor = Ingestor()
            ingestor = _ingestor
    return ingestor


def current_ingestor() -> Ingestor | None:
    return _ingestor


def _after_fork_in_child():
    # django-q2 forks its workers: a child must never append to, retire or
    # unlock the parent's segments. Closing the inherited descriptors leaves
    # the parent's flock in place (it belongs to the parent's open file).
    global _ingestor, _ingestor_lock
    old, _ingestor, _ingestor_lock = _ingestor, None, threading.Lock()
    if old is not None:
        old.forget_after_fork()
    journal.new_process_token()


os.register_at_fork(after_in_child=_after_fork_in_child)


_exit_hooks_installed = False
_previous_handlers = {}


def _install_exit_hooks():
    global _exit_hooks_installed
    if _exit_hooks_installed:
        return
    _exit_hooks_installed = True
    atexit.register(_flush_at_exit)
    if threading.current_thread() is not threading.main_thread():
        logger.debug("signal handlers not installed: the first signal was logged outside the main thread")
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        _previous_handlers[signum] = signal.getsignal(signum)
        signal.signal(signum, _flush_on_signal)


def _flush_at_exit():
    ingestor = _ingestor
    if ingestor is not None:
        ingestor.shutdown(settings.SIGNALHUB_EXIT_FLUSH_TIMEOUT)


def _flush_on_signal(signum, frame):
    _flush_at_exit()
    # Chain to whoever handled this signal before us (django-q2, Django's
    # runserver, the default action of ending the process).
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


# The API ----------------------------------------------------------------------------------


def log_signal(data) -> str:
    """Validate one signal, journal it durably and return its ``signal_id``.

    Raises ``ValidationError`` naming each bad field; nothing is journaled then.
    Never waits on the database (safe to call from async code).
    """
    values = clean_signal(data)
    get_ingestor().append([journal.encode(values)])
    return values["signal_id"]


def log_signals(iterable) -> list[str]:
    """Validate every signal, then journal them all with one write; return their ids in order.

    If any is invalid nothing is journaled; the ``ValidationError`` names each
    bad field, its messages prefixed with the signal's position.
    """
    cleaned, errors = [], {}
    if isinstance(iterable, (str, bytes, Mapping)) or not isinstance(iterable, Iterable):
        # A single signal (a mapping) or text would otherwise be iterated key by key.
        raise ValidationError({NON_FIELD_ERRORS: [
            f"Expected an iterable of signals (mappings); got {type(iterable).__name__}."]})
    for index, data in enumerate(iterable):
        try:
            cleaned.append(clean_signal(data))
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors.setdefault(field, []).extend(f"signal {index}: {message}" for message in messages)
    if errors:
        raise ValidationError(errors)
    if cleaned:
        now_ms = int(time.time() * 1000)
        get_ingestor().append([journal.encode(values, now_ms=now_ms) for values in cleaned])
    return [values["signal_id"] for values in cleaned]


def flush_pending(timeout=None) -> int:
    """Write everything this process has journaled; return the count stored meanwhile.

    Waits up to ``timeout`` seconds (None: until done). What could not be
    written (database down) stays in the journal.
    """
    ingestor = current_ingestor()
    if ingestor is None:
        return 0
    return ingestor.flush(timeout=timeout)


async def aflush_pending(timeout=None) -> int:
    """``flush_pending`` for async code: waits in a worker thread, not on the event loop."""
    return await asyncio.to_thread(flush_pending, timeout)
