"""Importing signals from files: JSON lines, CSV and the legacy Argo SQLite store.

Every record goes through ``clean_signal(data, lifecycle=True)`` and then the
batch writer, one transaction per batch, straight from the file rather than
through the journal: the file is already a durable copy, so a crash mid-import
loses nothing and re-running it resumes (what is stored counts as duplicates).
Journaling it again would only write a multi-GB file twice.

Readers stream: memory stays flat whatever the size of the file.
"""

import csv
import json
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from tqdm import tqdm

from signals.validation import clean_signal
from signals.writer import Incoming, WriteResult, write_batch

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "argo-sqlite")
IMPORT_BATCH = 1000
# Legacy columns copied as they are (the rest of a row is not SignalHub's).
ARGO_COLUMNS = (
    "signal_id", "symbol", "action", "strategy", "asset_type", "entry_price", "target_price", "stop_price",
    "confidence", "data_source", "timestamp", "outcome", "exit_price", "profit_loss_pct", "order_id",
    "created_at", "service_type", "executor_id", "generated_by", "regime", "reasoning", "exit_timestamp",
)
ARGO_REQUIRED = ("signal_id", "symbol", "action", "entry_price", "confidence", "timestamp", "sha256")


class ImportFailed(Exception):
    """The import could not run (unreadable file, missing table); nothing more was read."""


@dataclass
class ImportReport:
    path: str
    format: str
    dry_run: bool = False
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    # field -> {"count": n, "first": "reason (where)"}
    reasons: dict = field(default_factory=dict)

    def reject(self, where, error: ValidationError | str, field_name=NON_FIELD_ERRORS):
        self.rejected += 1
        problems = error.message_dict.items() if isinstance(error, ValidationError) and hasattr(error, "error_dict") \
            else [(field_name, error.messages if isinstance(error, ValidationError) else [str(error)])]
        for name, messages in problems:
            entry = self.reasons.setdefault(name, {"count": 0, "first": f"{messages[0]} ({where})"})
            entry["count"] += 1

    def add(self, written: WriteResult):
        self.imported += written.stored
        self.duplicates += written.duplicates
        self.conflicts += written.conflicts
        if written.quarantined:
            self.rejected += written.quarantined
            entry = self.reasons.setdefault("database", {"count": 0, "first": "refused by the database (see Quarantined records)"})
            entry["count"] += written.quarantined

    def summary(self):
        verb = "would import" if self.dry_run else "imported"
        line = (f"{self.path} ({self.format}): {verb} {self.imported}, duplicates {self.duplicates}, "
                f"conflicts {self.conflicts}, rejected {self.rejected}")
        if self.reasons:
            line += " [" + "; ".join(f"{name}: {entry['count']}, first: {entry['first']}"
                                     for name, entry in self.reasons.items()) + "]"
        return line

    def as_dict(self):
        return {"path": self.path, "format": self.format, "dry_run": self.dry_run, "read": self.read,
                "imported": self.imported, "duplicates": self.duplicates, "conflicts": self.conflicts,
                "rejected": self.rejected, "reasons": self.reasons}


# Readers: each yields (where, raw text, data mapping or an error) ---------------------------


def _byte_lines(path: Path, progress):
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            progress.update(len(line))
            yield number, line


def read_jsonl(path: Path, progress):
    for number, line in _byte_lines(path, progress):
        text = line.decode("utf-8", "replace").strip()
        if not text:
            continue
        try:
            yield f"line {number}", text, json.loads(text)
        except ValueError as exc:
            yield f"line {number}", text, ValidationError({"line": [f"Not valid JSON: {exc}."]})


def _csv_value(name, value):
    if value is None or value == "":
        return None
    if name == "sources_count" and value.strip().isdigit():
        return int(value)
    if name == "metadata":
        try:
            return json.loads(value)
        except ValueError:
            return value  # refused by validation, naming the field
    return value


def read_csv(path: Path, progress):
    def text_lines():
        for _, line in _byte_lines(path, progress):
            yield line.decode("utf-8-sig", "replace")

    reader = csv.reader(text_lines())
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [name.strip() for name in header]
    for row in reader:
        where = f"line {reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        raw = ",".join(row)
        if len(row) != len(header):
            yield where, raw, ValidationError({"line": [f"Has {len(row)} columns; the header has {len(header)}."]})
            continue
        yield where, raw, {name: _csv_value(name, value) for name, value in zip(header, row)}


def open_argo(path: Path) -> sqlite3.Connection:
    """Open a legacy Argo file read-only (its -wal and -shm files are read, never written)."""
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        columns = [row[1] for row in db.execute("PRAGMA table_info(signals)")]
    except sqlite3.DatabaseError as exc:
        raise ImportFailed(f"{path}: not a readable SQLite database ({exc})") from None
    missing = [name for name in ARGO_REQUIRED if name not in columns]
    if not columns or missing:
        db.close()
        raise ImportFailed(f"{path}: no legacy `signals` table with columns {', '.join(missing or ARGO_REQUIRED)}")
    return db


def read_argo(path: Path, progress):
    db = open_argo(path)
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(signals)")]
        kept = [name for name in ARGO_COLUMNS if name in columns]
        progress.total = db.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
        progress.unit = " rows"
        cursor = db.execute(f"SELECT id, sha256, {', '.join(kept)} FROM signals ORDER BY id")
        while True:
            rows = cursor.fetchmany(IMPORT_BATCH)
            if not rows:
                break
            for row in rows:
                progress.update(1)
                legacy_id, legacy_hash, values = row[0], row[1], row[2:]
                data = {name: value for name, value in zip(kept, values) if value is not None and value != ""}
                # The legacy hash was computed with other defaults: SignalHub
                # recomputes it and keeps the old one as provenance (below).
                data["_legacy_sha256"] = legacy_hash
                yield f"row id {legacy_id}", json.dumps(dict(zip(["id", "sha256", *kept], row)), default=str), data
    finally:
        db.close()


READERS = {"jsonl": read_jsonl, "csv": read_csv, "argo-sqlite": read_argo}


def _clean(data):
    legacy_hash = data.pop("_legacy_sha256", None) if isinstance(data, dict) else None
    values = clean_signal(data, lifecycle=True)
    if isinstance(legacy_hash, str) and legacy_hash and legacy_hash.lower() != values["sha256"]:
        values["legacy_sha256"] = legacy_hash[:128]
    return values


def import_signals(path, fmt, *, dry_run=False, progress=True) -> ImportReport:
    """Import every record of ``path``; return the counts. Raises ImportFailed if it cannot run."""
    path = Path(path)
    if fmt not in READERS:
        raise ImportFailed(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise ImportFailed(f"{path}: no such file")
    if fmt == "argo-sqlite":
        open_argo(path).close()  # fail early, before any progress bar
    report = ImportReport(path=str(path), format=fmt, dry_run=dry_run)
    batch_size = max(IMPORT_BATCH, settings.SIGNALHUB_BATCH_SIZE)
    total = None if fmt == "argo-sqlite" else path.stat().st_size
    bar = tqdm(total=total, unit="B" if total else " rows", unit_scale=bool(total), desc=f"import {path.name}",
               disable=None if progress else True, leave=False)
    batch = []
    try:
        for where, raw, data in READERS[fmt](path, bar):
            report.read += 1
            if isinstance(data, ValidationError):
                report.reject(where, data)
                continue
            try:
                values = _clean(data)
            except ValidationError as exc:
                report.reject(where, exc)
                continue
            batch.append(Incoming(values, f"{path.name}:{where}", raw=raw))
            if len(batch) >= batch_size:
                report.add(write_batch(batch, dry_run=dry_run))
                batch = []
        if batch:
            report.add(write_batch(batch, dry_run=dry_run))
    finally:
        bar.close()
    logger.debug("import: %s", report.summary())
    return report
