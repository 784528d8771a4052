"""The journal's segments: owned by one live process, claimed for replay once their owner is dead.

The owner holds an exclusive ``flock`` on each of its segments for as long as it
lives. The kernel drops the lock when the process dies, however it dies, so a
segment whose lock can be taken has a dead owner and can be replayed safely.
New segments are created under a ``.tmp`` name, locked, then renamed, so
recovery never sees a segment before its owner holds the lock. A segment's
``.done`` file holds the byte offset up to which its lines are stored.
"""

import errno
import fcntl
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from signals.writepath.journal_files import JournalUnavailable, check_dir, ensure_dir, open_done_file, open_regular

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
DONE_SUFFIX = ".done"
TMP_SUFFIX = ".tmp"
READ_CHUNK = 1 << 22  # how much of a segment is read at once


def journal_dir() -> Path:
    return Path(settings.SIGNALHUB_JOURNAL_DIR)


# Segments owned by this process ------------------------------------------------------


@dataclass
class OwnedSegment:
    """A segment this process writes to (``fd``, locked) and consumes (``read_offset``)."""

    path: Path
    fd: int
    created: float = field(default_factory=time.monotonic)
    size: int = 0  # bytes of whole lines appended
    read_offset: int = 0  # bytes whose signals are resolved (stored, duplicate, conflict, quarantined)
    sealed: bool = False
    synced_size: int = 0
    read_fd: int | None = None
    done_fd: int | None = None

    @property
    def name(self):
        return self.path.name

    def append(self, data: bytes, *, fsync: bool):
        """Append whole lines; on a short or failed write cut the file back so no half line stays."""
        try:
            written = os.write(self.fd, data)
            if written != len(data):
                # A regular file takes less than asked only when its disk or quota is full.
                raise OSError(errno.ENOSPC,
                              f"no space left: a short write to the journal ({written} of {len(data)} bytes)")
            if fsync:
                os.fdatasync(self.fd)
                self.synced_size = self.size + len(data)
        except OSError:
            os.ftruncate(self.fd, self.size)
            os.lseek(self.fd, self.size, os.SEEK_SET)
            raise
        self.size += len(data)

    def sync(self):
        if self.synced_size < self.size:
            size = self.size
            os.fdatasync(self.fd)
            self.synced_size = size

    def reader(self) -> int:
        if self.read_fd is None:
            fd = open_regular(self.path, os.O_RDONLY)
            if os.fstat(fd).st_ino != os.fstat(self.fd).st_ino:
                os.close(fd)
                raise JournalUnavailable(errno.ESTALE, "the segment was replaced under its owner", str(self.path))
            self.read_fd = fd
        return self.read_fd

    def mark_done(self, offset):
        """Record that every line before ``offset`` is resolved (after the commit, never before).

        ``read_offset`` moves even if the done file cannot be written (a full
        disk): the lines are stored; a replay would only count them again as
        duplicates.
        """
        self.read_offset = offset
        if self.done_fd is None:
            self.done_fd = open_done_file(self.path.with_name(self.name + DONE_SUFFIX))
        os.pwrite(self.done_fd, b"%020d\n" % offset, 0)

    def retire(self):
        """Delete the segment (all its signals are resolved), then release its lock."""
        self.path.unlink(missing_ok=True)
        self.path.with_name(self.name + DONE_SUFFIX).unlink(missing_ok=True)
        self.close()

    def close(self):
        for name in ("read_fd", "done_fd", "fd"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)


_token = os.urandom(4).hex()


def create_segment(directory: Path, seq: int, *, fsync_dir: bool) -> OwnedSegment:
    """Create, lock and publish a new segment for this process."""
    ensure_dir(directory)  # 0700, and so is a data directory it has to create
    name = f"{socket.gethostname()}-{os.getpid()}-{_token}-{seq:06d}{SEGMENT_SUFFIX}"
    tmp = directory / (name + TMP_SUFFIX)
    # O_EXCL: never an existing file, nor a link planted under the name.
    fd = open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp, directory / name)
        if fsync_dir:
            _fsync_dir(directory)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return OwnedSegment(path=directory / name, fd=fd)


def new_process_token():
    """Give a forked child its own segment names."""
    global _token
    _token = os.urandom(4).hex()


def _fsync_dir(directory: Path):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Segments of other (dead) processes ------------------------------------------------------


def read_done_offset(path: Path) -> int:
    """Return a segment's done offset (0 without a done file, or with one that is not a regular file)."""
    done = path.with_name(path.name + DONE_SUFFIX)
    try:
        fd = open_regular(done, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        logger.warning("ignoring the done file %s (%s); the segment is replayed from its start", done, exc)
        return 0
    try:
        return int(os.pread(fd, 64, 0).strip() or 0)
    except ValueError:
        return 0
    finally:
        os.close(fd)


@dataclass
class ClaimedSegment:
    """A dead owner's segment, locked by this process for replay."""

    path: Path
    fd: int
    size: int
    start: int  # the dead owner's done offset

    @property
    def name(self):
        return self.path.name

    def mark_done(self, offset):
        path = self.path.with_name(self.name + DONE_SUFFIX)
        fd = open_done_file(path)
        try:
            os.pwrite(fd, b"%020d\n" % offset, 0)
        finally:
            os.close(fd)

    def retire(self):
        self.path.unlink(missing_ok=True)
        self.path.with_name(self.name + DONE_SUFFIX).unlink(missing_ok=True)
        self.release()

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def try_claim(path: Path) -> ClaimedSegment | None:
    """Lock ``path`` if its owner is dead; return None while the owner lives, if it is gone, or not a regular file."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("skipping %s in the journal: %s (a segment is a regular file, never a link)", path, exc)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        # Retired between our listing and our lock: the name is gone or reused.
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            os.close(fd)
            return None
    except FileNotFoundError:
        os.close(fd)
        return None
    size = os.fstat(fd).st_size
    return ClaimedSegment(path=path, fd=fd, size=size, start=min(read_done_offset(path), size))


def segment_paths(directory: Path | None = None) -> list[Path]:
    """Return the segments in ``directory``, oldest name first; symlinks and non-regular files are skipped and logged.

    Raises JournalUnavailable if the directory itself is a symlink.
    """
    directory = directory or journal_dir()
    check_dir(directory)
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    paths = []
    for entry in entries:
        if not entry.name.endswith(SEGMENT_SUFFIX):
            continue
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            logger.warning("skipping %s in the journal: not a regular file (a segment is never a link)", entry.path)
            continue
        paths.append(Path(entry.path))
    return sorted(paths)


def remove_leftovers(directory: Path | None = None) -> int:
    """Delete ``.done`` files whose segment is gone and unlocked ``.tmp`` files; return the count."""
    directory = directory or journal_dir()
    removed = 0
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    names = {path.name for path in entries}
    for path in entries:
        if path.name.endswith(DONE_SUFFIX) and path.name[: -len(DONE_SUFFIX)] not in names:
            path.unlink(missing_ok=True)
            removed += 1
        elif path.name.endswith(TMP_SUFFIX):
            # A creator died between open and rename: nothing was ever appended to it.
            claimed = try_claim(path)
            if claimed is not None:
                claimed.retire()
                removed += 1
    return removed


# Monitoring ----------------------------------------------------------------------------


def backlog_stats() -> dict:
    """Return what the journals hold that is not yet stored (for monitoring).

    Counts the lines after each segment's done offset, whoever owns it, and the
    age of the oldest of them (from its append time). Reads only the tails.
    """
    from signals.models import QuarantinedRecord

    directory = journal_dir()
    pending = 0
    oldest_ms = None
    problem = None
    try:
        paths = segment_paths(directory)
    except JournalUnavailable as exc:
        logger.error("cannot count the journal's backlog: %s", exc)
        paths, problem = [], str(exc)
    for path in paths:
        try:
            fd = open_regular(path, os.O_RDONLY)
        except OSError:  # retired meanwhile, or swapped for a link (logged by segment_paths next time)
            continue
        try:
            size = os.fstat(fd).st_size
            offset = min(read_done_offset(path), size)
            first = True
            while offset < size:
                chunk = os.pread(fd, min(READ_CHUNK, size - offset), offset)
                if not chunk:
                    break
                if first:
                    newline = chunk.find(b"\n")
                    try:
                        stamp = int(chunk[9:newline if newline >= 0 else len(chunk)].split(b" ", 1)[0])
                        oldest_ms = stamp if oldest_ms is None else min(oldest_ms, stamp)
                    except ValueError:
                        pass
                    first = False
                pending += chunk.count(b"\n")
                offset += len(chunk)
        finally:
            os.close(fd)
    return {
        "pending_signals": pending,
        "oldest_pending_age_seconds": None if oldest_ms is None else max(0.0, time.time() - oldest_ms / 1000),
        "segments": len(paths),
        "quarantined_records": QuarantinedRecord.objects.count(),
        "directory": str(directory),
        "problem": problem,  # the journal directory refused (a symlink), else None
    }
