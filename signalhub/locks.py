"""One run at a time of a maintenance command, released even when its holder is killed.

PostgreSQL: a session advisory lock, which the server drops when the holder's
connection goes away (a SIGKILLed process included), and which covers every
machine that shares the database. SQLite: an ``flock`` on a file in the data
directory, which the kernel drops when the holder's process dies.
"""

import contextlib
import fcntl
import hashlib
import logging
import os

from django.conf import settings
from django.db import connections

from signalhub.private_files import PRIVATE_FILE_MODE, make_private_dir

logger = logging.getLogger(__name__)

# Names held by this process: a PostgreSQL advisory lock is re-entrant within
# its session, so a second run in the same process must be refused here.
_held = set()


class LockHeld(Exception):
    """Another run of the same command holds the lock."""


def _advisory_key(name):
    # A stable signed 64-bit key per name (pg_try_advisory_lock takes a bigint).
    return int.from_bytes(hashlib.sha256(f"signalhub:{name}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def command_lock(name, using="default"):
    """Hold the lock named ``name`` for the block; raise LockHeld at once if another run has it."""
    if name in _held:
        raise LockHeld(f"another run holding the {name} lock is in progress (in this process)")
    _held.add(name)
    try:
        with _lock(name, using):
            yield
    finally:
        _held.discard(name)


@contextlib.contextmanager
def _lock(name, using):
    connection = connections[using]
    if connection.vendor == "postgresql":
        key = _advisory_key(name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if not cursor.fetchone()[0]:
                raise LockHeld(f"another run holding the {name} lock is in progress (PostgreSQL advisory lock {key})")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    lock_dir = settings.DATA_DIR / "locks"
    make_private_dir(lock_dir)
    path = lock_dir / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockHeld(f"another run holding the {name} lock is in progress (pid {holder}, lock file {path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
