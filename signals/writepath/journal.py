"""The journal: append-only segment files that hold every signal until it is stored.

Layout (one directory, ``SIGNALHUB_JOURNAL_DIR``):

- ``<host>-<pid>-<token>-<seq>.seg``: a segment. One line per signal::

      <crc32 of the rest, 8 hex> <append time, ms> <cleaned values as a JSON array>\\n

  The values are those ``clean_signal`` returned, in ``LINE_FIELDS`` order
  (null where absent, timestamps as ISO text in UTC), so a replay never
  validates again against a clock that has moved on. The checksum tells a torn
  or damaged line from a good one; a line whose checksum matches is one
  ``encode`` wrote, which is what lets the writer hand a batch of them to the
  database to unpack without decoding each in Python (``signals.writepath.writer``).
- ``<segment>.done``: the byte offset up to which the owner has stored every
  line (written after each commit, never ahead of it). Recovery resumes there
  and monitoring counts the backlog from there.

The owner holds an exclusive ``flock`` on each of its segments for as long as it
lives. The kernel drops the lock when the process dies, however it dies, so a
segment whose lock can be taken has a dead owner and can be replayed safely.
New segments are created under a ``.tmp`` name, locked, then renamed, so
recovery never sees a segment before its owner holds the lock.
"""

import errno
import fcntl
import json
import logging
import os
import socket
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring_ascii
from pathlib import Path

from django.conf import settings

from signals.ledger.fields import DATETIME_FIELDS, GENERATOR_FIELDS

# The file-safety half of the journal (re-exported: callers use journal.JournalUnavailable).
from signals.writepath.journal_files import JournalUnavailable, check_dir, ensure_dir, open_done_file, open_regular

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
DONE_SUFFIX = ".done"
TMP_SUFFIX = ".tmp"
# Keys and types a journal line must carry to be written as a Signal.
REQUIRED = {"signal_id": str, "symbol": str, "action": str, "entry_price": float,
            "confidence": float, "timestamp": str, "sha256": str}
READ_CHUNK = 1 << 22
# What a line holds, in order: the fields a generator sends (the catalogue's
# order, which old lines are read by). Lifecycle fields (imports) are never
# journaled: imports write from their own file, already a durable copy.
LINE_FIELDS = GENERATOR_FIELDS
_LINE_FIELD_SET = frozenset(LINE_FIELDS)
_TIMESTAMP = LINE_FIELDS.index("timestamp")


class CorruptLine(Exception):
    """A journal line that cannot be turned back into a signal (reason in args[0])."""


def journal_dir() -> Path:
    return Path(settings.SIGNALHUB_JOURNAL_DIR)


# Lines ------------------------------------------------------------------------------


_LINE_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
if c_make_encoder is not None:
    # JSONEncoder.encode builds this C encoder (and a closure) for every call;
    # a line is one call on log_signal's path, so it is built once here.
    # Same arguments as JSONEncoder gives it, so the same text.
    _line_encoder = c_make_encoder(None, _LINE_JSON.default, encode_basestring_ascii, None, ":", ",",
                                   False, False, False)

    def _encode_json(row):
        return "".join(_line_encoder(row, 0))
else:
    _encode_json = _LINE_JSON.encode


def encode(values: dict, *, now_ms: int | None = None) -> bytes:
    """Return the journal line (bytes, newline-terminated) for one cleaned signal.

    Raises ValueError for a field a line does not hold, rather than dropping it.
    """
    if not values.keys() <= _LINE_FIELD_SET:
        raise ValueError(f"cannot journal {', '.join(sorted(values.keys() - _LINE_FIELD_SET))}: "
                         "a journal line holds a generator's signal only")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    get = values.get
    row = [get(name) for name in LINE_FIELDS]
    timestamp = row[_TIMESTAMP]
    # In UTC always: the SQLite writer turns this text into Django's stored form as it is.
    row[_TIMESTAMP] = (timestamp if timestamp.tzinfo is UTC else timestamp.astimezone(UTC)).isoformat()
    data = b"%d %s" % (now_ms, _encode_json(row).encode())
    return b"%08x %s\n" % (zlib.crc32(data), data)


def check(line: bytes) -> tuple[int, bytes]:
    """Return ``(append time in ms, the JSON payload)`` of a line whose checksum matches; else CorruptLine."""
    if len(line) < 12 or line[8:9] != b" ":
        raise CorruptLine("malformed line: no checksum prefix")
    body = line[9:]
    try:
        expected = int(line[:8], 16)
    except ValueError:
        raise CorruptLine("malformed line: checksum is not hexadecimal") from None
    if zlib.crc32(body) != expected:
        raise CorruptLine("checksum mismatch: the line is damaged or torn")
    stamp, _, payload = body.partition(b" ")
    try:
        return int(stamp), payload
    except ValueError:
        raise CorruptLine("unreadable line: the append time is not a number") from None


def decode(line: bytes) -> tuple[int, dict]:
    """Return ``(append time in ms, cleaned values)`` of one line (without its newline)."""
    appended_ms, payload = check(line)
    return appended_ms, decode_payload(payload)


def decode_payload(payload: bytes) -> dict:
    """Return the cleaned values of a line's JSON payload; CorruptLine if they cannot be a signal's."""
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise CorruptLine(f"unreadable line: {exc}") from None
    if isinstance(data, list):
        if len(data) != len(LINE_FIELDS):
            raise CorruptLine(f"unreadable line: {len(data)} values, not {len(LINE_FIELDS)}")
        values = {name: value for name, value in zip(LINE_FIELDS, data, strict=True) if value is not None}
    elif isinstance(data, dict):
        values = data  # a line written before lines were arrays
    else:
        raise CorruptLine("unreadable line: the values are neither an array nor a mapping")
    for key, kind in REQUIRED.items():
        if not isinstance(values.get(key), kind) or isinstance(values.get(key), bool):
            raise CorruptLine(f"{key}: missing or not {kind.__name__} in the journal line")
    for key in DATETIME_FIELDS:
        if values.get(key) is not None:
            try:
                values[key] = datetime.fromisoformat(values[key])
            except (TypeError, ValueError):
                raise CorruptLine(f"{key}: not an ISO-8601 date and time in the journal line") from None
            if values[key].tzinfo is None:
                raise CorruptLine(f"{key}: has no time zone in the journal line")
    return values


@dataclass(slots=True)  # a batch holds thousands: no per-instance __dict__
class Line:
    offset: int  # where the line starts in its segment
    end: int  # offset just past its newline
    raw: bytes
    appended_ms: int | None = None
    values: dict | None = None  # read with decode=False: None, see payload
    error: str | None = None  # set when the line is corrupt or torn
    payload: bytes | None = None  # the JSON values of a line whose checksum matches


def read_lines(fd: int, start: int, end: int, *, max_lines: int, final: bool, decode: bool = True):
    """Return the lines of ``fd`` between byte offsets ``start`` and ``end`` (at most ``max_lines``).

    Only whole lines are returned. Each line's checksum is checked; with
    ``decode`` its values are decoded too, else only its ``payload`` is kept
    (the flusher's way: the database unpacks a batch of payloads itself).
    With ``final`` (a dead owner's segment, read to its end) bytes after the
    last newline are a torn last line and come back as one corrupt ``Line``.
    """
    lines = []
    offset = start
    while offset < end and len(lines) < max_lines:
        chunk = os.pread(fd, min(READ_CHUNK, end - offset), offset)
        if not chunk:
            break
        cut = chunk.rfind(b"\n")
        if cut < 0:
            if offset + len(chunk) < end:
                # One line longer than the chunk: read it whole.
                chunk = os.pread(fd, end - offset, offset)
                cut = chunk.rfind(b"\n")
            if cut < 0:
                if final:
                    lines.append(Line(offset, offset + len(chunk), chunk, error="torn last line (no newline): the writer died mid-write"))
                    offset += len(chunk)
                break
        position = 0
        body = memoryview(chunk)[: cut + 1]
        while position <= cut and len(lines) < max_lines:
            newline = chunk.index(b"\n", position)
            raw = bytes(body[position:newline])
            line = Line(offset + position, offset + newline + 1, raw)
            try:
                line.appended_ms, line.payload = check(raw)
                if decode:
                    line.values = decode_payload(line.payload)
            except CorruptLine as exc:
                line.error = str(exc)
            lines.append(line)
            position = newline + 1
        offset += position
    return lines


def read_payloads(fd: int, start: int, end: int, *, max_lines: int):
    """Return ``(payloads, offset after them)`` of up to ``max_lines`` whole lines from ``start``, or None.

    The flusher's read: every line's checksum is checked, and nothing is built
    per line but its payload. None if any line fails its check or is longer
    than a chunk: the caller then reads the range with ``read_lines``, which
    tells each line's fate.
    """
    payloads = []
    offset = start
    crc32 = zlib.crc32
    try:
        while offset < end and len(payloads) < max_lines:
            chunk = os.pread(fd, min(READ_CHUNK, end - offset), offset)
            cut = chunk.rfind(b"\n")
            if cut < 0:
                # A torn last line, or one longer than a chunk: read_lines tells which.
                if payloads:
                    break
                return None
            raws = chunk[:cut].split(b"\n")
            del raws[max_lines - len(payloads):]
            for raw in raws:
                if raw[8:9] != b" " or crc32(raw[9:]) != int(raw[:8], 16):
                    return None
                payloads.append(raw[raw.index(b" ", 9) + 1:])
            offset += sum(map(len, raws)) + len(raws)
    except ValueError:  # a checksum that is not hexadecimal, or no append time
        return None
    return payloads, offset


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
