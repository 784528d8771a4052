"""The ingest API: ``log_signal`` journals a signal, this process's flusher stores it.

``log_signal`` validates, appends one line to this process's journal segment and
returns: it never waits on the database, and once it returns the signal
survives a SIGKILL of the process (the line is in the kernel's page cache; with
``SIGNALHUB_JOURNAL_FSYNC=always`` it also survives a power loss).

Each process has one ``Ingestor`` (``signals.writepath.flusher``), made on first
use, made afresh in a forked child, and flushed at exit (atexit, SIGTERM,
SIGINT). What a dead process leaves behind is replayed by
``signals.writepath.recovery`` (the periodic flush and ``manage.py flush_signals``).
"""

import asyncio
import atexit
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from signals.ledger.validation import clean_signal
from signals.writepath import journal
from signals.writepath.flusher import Ingestor
from signals.writepath.journal import JournalUnavailable

__all__ = ["Ingestor", "JournalUnavailable", "aflush_pending", "current_ingestor", "flush_pending", "get_ingestor",
           "log_signal", "log_signals"]

logger = logging.getLogger(__name__)

# The process-wide ingestor ----------------------------------------------------------------

_ingestor: Ingestor | None = None
_ingestor_lock = threading.Lock()


def get_ingestor() -> Ingestor:
    global _ingestor
    ingestor = _ingestor
    if ingestor is None:
        with _ingestor_lock:
            if _ingestor is None:
                _ingestor = Ingestor(on_start=_install_exit_hooks)
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
