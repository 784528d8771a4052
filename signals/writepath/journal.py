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

The segments themselves (who owns one, claiming a dead owner's, the backlog)
are ``signals.writepath.segments``; this module encodes and reads the lines.
"""

import json
import logging
import os
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring_ascii

from signals.ledger.fields import DATETIME_FIELDS, GENERATOR_FIELDS

# The segments and the file safety, offered here too: callers use journal.<name>.
from signals.writepath.journal_files import JournalUnavailable
from signals.writepath.segments import (
    DONE_SUFFIX,
    READ_CHUNK,
    SEGMENT_SUFFIX,
    TMP_SUFFIX,
    ClaimedSegment,
    OwnedSegment,
    backlog_stats,
    create_segment,
    journal_dir,
    new_process_token,
    read_done_offset,
    remove_leftovers,
    segment_paths,
    try_claim,
)

__all__ = [
    # Lines
    "LINE_FIELDS", "REQUIRED", "CorruptLine", "Line", "check", "decode", "decode_payload", "encode",
    "read_lines", "read_payloads",
    # Segments (signals.writepath.segments) and file safety (journal_files)
    "DONE_SUFFIX", "READ_CHUNK", "SEGMENT_SUFFIX", "TMP_SUFFIX", "ClaimedSegment", "JournalUnavailable",
    "OwnedSegment", "backlog_stats", "create_segment", "journal_dir", "new_process_token", "read_done_offset",
    "remove_leftovers", "segment_paths", "try_claim",
]

logger = logging.getLogger(__name__)

# Keys and types a journal line must carry to be written as a Signal.
REQUIRED = {"signal_id": str, "symbol": str, "action": str, "entry_price": float,
            "confidence": float, "timestamp": str, "sha256": str}
# What a line holds, in order: the fields a generator sends (the catalogue's
# order, which old lines are read by). Lifecycle fields (imports) are never
# journaled: imports write from their own file, already a durable copy.
LINE_FIELDS = GENERATOR_FIELDS
_LINE_FIELD_SET = frozenset(LINE_FIELDS)
_TIMESTAMP = LINE_FIELDS.index("timestamp")


class CorruptLine(Exception):
    """A journal line that cannot be turned back into a signal (reason in args[0])."""


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


