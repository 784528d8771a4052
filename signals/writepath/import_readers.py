"""Reading import files record by record: JSON lines, CSV and the legacy Argo SQLite store.

Each reader yields ``(where, raw text, data mapping or a ValidationError)``.
Memory stays flat whatever the file: a line (or a physical CSV line) longer
than ``MAX_RECORD_BYTES`` is refused by its line number and skipped to the
next newline in small reads, never held whole. Bytes that are not UTF-8
refuse their record; they are never replaced. Only regular files are opened.
"""

import codecs
import csv
import json
import os
import re
import sqlite3
import stat
from pathlib import Path

from django.core.exceptions import ValidationError

IMPORT_BATCH = 1000
# The longest line (JSON lines) or physical CSV line read; longer ones are
# refused and skipped. A signal is a few hundred bytes, its metadata at most
# METADATA_MAX_BYTES, so 1 MiB is generous and bounds what one record costs.
MAX_RECORD_BYTES = 1 << 20
SKIP_CHUNK = 1 << 20  # what an over-long line is skipped by, one read at a time
REASON_MAX_CHARS = 300  # a reason may quote the input: it is cut, and escaped, before it is printed
# Legacy columns copied as they are (the rest of a row is not SignalHub's).
ARGO_COLUMNS = (
    "signal_id", "symbol", "action", "strategy", "asset_type", "entry_price", "target_price", "stop_price",
    "confidence", "data_source", "timestamp", "outcome", "exit_price", "profit_loss_pct", "order_id",
    "created_at", "service_type", "executor_id", "generated_by", "regime", "reasoning", "exit_timestamp",
)
ARGO_REQUIRED = ("signal_id", "symbol", "action", "entry_price", "confidence", "timestamp", "sha256")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


class ImportFailed(Exception):
    """The import could not run, or stopped part-way (``returncode`` 2; ``report`` says what was done)."""

    def __init__(self, message, *, returncode=1, report=None):
        super().__init__(message)
        self.returncode = returncode
        self.report = report


def printable(text, limit=REASON_MAX_CHARS):
    """Return ``text`` safe for a terminal and a log: control characters and lone surrogates escaped, cut."""
    text = str(text)
    text = text[:limit] + "..." if len(text) > limit else text
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", text)


def open_regular(path: Path):
    """Open ``path`` for binary reading if it is a regular file (a symlink to one is followed).

    O_NONBLOCK makes opening a FIFO with no writer return at once instead of
    waiting forever; the type is checked on the opened descriptor, so the path
    cannot be swapped for something else between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ImportFailed(f"{path}: no such file") from None
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot be opened ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket or other special file")
        raise ImportFailed(f"{path}: not a regular file ({kind}); only regular files are imported")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


# Readers: each yields (where, raw text, data mapping or a ValidationError) ---------------------


def _byte_lines(handle, progress):
    """Yield (line number, line bytes or None, refusal or None), never holding more than MAX_RECORD_BYTES."""
    number = 0
    while True:
        line = handle.readline(MAX_RECORD_BYTES + 1)
        if not line:
            return
        number += 1
        progress.update(len(line))
        if len(line) <= MAX_RECORD_BYTES or line.endswith(b"\n"):
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8):]
            yield number, line, None
            continue
        size = len(line)
        while not line.endswith(b"\n"):
            line = handle.readline(SKIP_CHUNK)
            if not line:
                break
            size += len(line)
            progress.update(len(line))
        yield number, None, f"Longer than {MAX_RECORD_BYTES} bytes ({size} bytes); skipped to the next line."


def _not_utf8(exc: UnicodeDecodeError):
    return f"Not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); refused, not repaired."


def read_jsonl(handle, progress):
    for number, line, refusal in _byte_lines(handle, progress):
        where = f"line {number}"
        if refusal:
            yield where, "", ValidationError({"line": [refusal]})
            continue
        if not line.strip():  # blank: only ASCII whitespace
            continue
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            yield where, "", ValidationError({"line": [_not_utf8(exc)]})
            continue
        try:
            yield where, text, json.loads(text)
        except RecursionError:
            yield where, text, ValidationError({"line": ["Not valid JSON: nested too deep to read."]})
        except ValueError as exc:
            yield where, text, ValidationError({"line": [f"Not valid JSON: {exc}."]})


class _LineRefused(Exception):
    def __init__(self, number, reason):
        super().__init__(reason)
        self.number, self.reason = number, reason


class _CsvLines:
    """The text lines the csv reader pulls; a line that cannot be read raises ``_LineRefused``.

    A class rather than a generator: the reader resets itself on its next call
    after an error, and a plain iterator (unlike a generator) goes on after raising.
    """

    def __init__(self, handle, progress):
        self.lines = _byte_lines(handle, progress)
        self.number = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.number, line, refusal = next(self.lines)
        if refusal:
            raise _LineRefused(self.number, refusal)
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _LineRefused(self.number, _not_utf8(exc)) from None


def _csv_value(name, value):
    if value is None or value == "":
        return None
    if name == "sources_count" and value.strip().isdecimal():
        try:
            return int(value)
        except ValueError:  # more digits than Python converts: refused by validation, naming the field
            return value
    if name == "metadata":
        try:
            return json.loads(value)
        except RecursionError:
            raise ValidationError({"metadata": ["Not valid JSON: nested too deep to read."]}) from None
        except ValueError:
            return value  # refused by validation, naming the field
    return value


def read_csv(handle, progress):
    lines = _CsvLines(handle, progress)
    reader = csv.reader(lines)
    header = None
    while True:
        start = lines.number + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except (_LineRefused, csv.Error) as exc:
            number = exc.number if isinstance(exc, _LineRefused) else lines.number
            where = f"line {start}" if number == start else f"lines {start}-{number}"
            if header is None:
                raise ImportFailed(f"{where}: the header cannot be read ({printable(exc)})") from None
            reason = exc.reason if isinstance(exc, _LineRefused) else f"Not valid CSV: {exc}."
            yield where, "", ValidationError({"line": [reason]})
            continue
        where = f"line {start}" if lines.number == start else f"lines {start}-{lines.number}"
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [name.strip() for name in row]
            continue
        raw = ",".join(row)
        if len(row) != len(header):
            yield where, raw, ValidationError({"line": [f"Has {len(row)} columns; the header has {len(header)}."]})
            continue
        try:
            yield where, raw, {name: _csv_value(name, value) for name, value in zip(header, row)}
        except ValidationError as exc:
            yield where, raw, exc


def open_argo(path: Path) -> sqlite3.Connection:
    """Open a legacy Argo file read-only (its -wal and -shm files are read, never written)."""
    open_regular(path).close()
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ImportFailed(f"{path}: not a readable SQLite database ({exc})") from None
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(signals)")]
        db.execute("SELECT COUNT(*) FROM signals").fetchone() if columns else None
    except sqlite3.Error as exc:
        db.close()
        raise ImportFailed(f"{path}: not a readable SQLite database ({exc})") from None
    missing = [name for name in ARGO_REQUIRED if name not in columns]
    if not columns or missing:
        db.close()
        raise ImportFailed(f"{path}: no legacy `signals` table with columns {', '.join(missing or ARGO_REQUIRED)}")
    return db


def _argo_row(kept, values):
    """Return (data, None) for a legacy row, or (None, ValidationError) if a text is not UTF-8."""
    data = {}
    for name, value in zip(kept, values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                return None, ValidationError({name: [_not_utf8(exc)]})
        if value is not None and value != "":
            data[name] = value
    return data, None


def read_argo(path: Path, progress):
    db = open_argo(path)
    last = None
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(signals)")]
        kept = [name for name in ARGO_COLUMNS if name in columns]
        progress.total = db.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
        progress.unit = " rows"
        # Text comes back as bytes and is decoded per value: a row that is not
        # UTF-8 is refused alone instead of failing the fetch of its whole batch.
        db.text_factory = bytes
        # Stepped one row at a time, so that damage stops the read exactly where it is.
        for row in db.execute(f"SELECT id, sha256, {', '.join(kept)} FROM signals ORDER BY id"):
            progress.update(1)
            legacy_id, (legacy_hash, *values) = row[0], row[1:]
            last = legacy_id
            where = f"row id {legacy_id}"
            data, error = _argo_row(["sha256", *kept], [legacy_hash, *values])
            if error:
                yield where, "", error
                continue
            # The legacy hash was computed with other defaults: SignalHub
            # recomputes it and keeps the old one as provenance (below).
            data["_legacy_sha256"] = data.pop("sha256", None)
            yield where, json.dumps({"id": legacy_id, **data}, default=str), data
    except sqlite3.DatabaseError as exc:
        after = f" after row id {last}" if last is not None else ""
        raise ImportFailed(f"{path}: the legacy file is damaged{after} ({exc}); nothing more could be read",
                           returncode=2) from None
    finally:
        db.close()


READERS = {"jsonl": read_jsonl, "csv": read_csv}


def open_reader(fmt, path, progress):
    """Yield the records of ``path`` in format ``fmt``, opening only a regular file."""
    if fmt == "argo-sqlite":
        yield from read_argo(path, progress)
        return
    with open_regular(path) as handle:
        yield from READERS[fmt](handle, progress)
