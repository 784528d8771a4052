"""Importing signals from files: JSON lines, CSV and the legacy Argo SQLite store.

Every record goes through ``clean_signal(data, lifecycle=True)`` and then the
batch writer, one transaction per batch, straight from the file rather than
through the journal: the file is already a durable copy, so a crash mid-import
loses nothing and re-running it resumes (what is stored counts as duplicates).
Journaling it again would only write a multi-GB file twice.

The readers (``signals.writepath.import_readers``) stream, in bounded memory. Every
record that is not stored is counted, and each one refused before the
database is reported with its file, line and reason through ``on_refused``.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from tqdm import tqdm

from signals.ledger.validation import clean_signal
from signals.writepath.import_readers import (
    IMPORT_BATCH,
    ImportFailed,
    open_argo,
    open_reader,
    open_regular,
    printable,
)
from signals.writepath.writer import Incoming, WriteResult, write_batch

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "argo-sqlite")


def _problems(error, field_name=NON_FIELD_ERRORS):
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        items = error.message_dict.items()
    else:
        items = [(field_name, error.messages if isinstance(error, ValidationError) else [str(error)])]
    return [(printable(name, 80), [printable(message) for message in messages]) for name, messages in items]


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
        """Count a refused record; return its reasons as [(field, [message, ...])], printable."""
        self.rejected += 1
        problems = _problems(error, field_name)
        for name, messages in problems:
            entry = self.reasons.setdefault(name, {"count": 0, "first": f"{messages[0]} ({where})"})
            entry["count"] += 1
        return problems

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


def _clean(data):
    legacy_hash = data.pop("_legacy_sha256", None) if isinstance(data, dict) else None
    values = clean_signal(data, lifecycle=True)
    if isinstance(legacy_hash, str) and legacy_hash and legacy_hash.lower() != values["sha256"]:
        values["legacy_sha256"] = legacy_hash[:128]
    return values


def import_signals(path, fmt, *, dry_run=False, progress=True, on_refused=None) -> ImportReport:
    """Import every record of ``path``; return the counts.

    ``on_refused(where, problems)`` is called for each record refused before
    the database (``problems``: [(field, [message, ...])], escaped for printing).
    Raises ImportFailed if the import cannot run, or stops part-way on a
    damaged legacy file (after storing what was read before the damage).
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ImportFailed(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "argo-sqlite":
        open_argo(path).close()  # fail early, before any progress bar
        total = None
    else:
        with open_regular(path) as handle:
            total = os.fstat(handle.fileno()).st_size
    report = ImportReport(path=str(path), format=fmt, dry_run=dry_run)
    batch_size = max(IMPORT_BATCH, settings.SIGNALHUB_BATCH_SIZE)
    bar = tqdm(total=total, unit="B" if total else " rows", unit_scale=bool(total), desc=f"import {path.name}",
               disable=None if progress else True, leave=False)
    batch = []

    def refuse(where, error):
        problems = report.reject(where, error)
        if on_refused:
            on_refused(where, problems)

    try:
        for where, raw, data in open_reader(fmt, path, bar):
            report.read += 1
            if isinstance(data, ValidationError):
                refuse(where, data)
                continue
            try:
                values = _clean(data)
            except ValidationError as exc:
                refuse(where, exc)
                continue
            except RecursionError:  # metadata json.loads could read but not encode again
                refuse(where, ValidationError({"metadata": ["Nested too deep to store."]}))
                continue
            batch.append(Incoming(values, f"{path.name}:{where}", raw=raw))
            if len(batch) >= batch_size:
                report.add(write_batch(batch, dry_run=dry_run))
                batch = []
    except ImportFailed as exc:
        # What was read before the damage is stored, so that running it again resumes.
        if batch:
            report.add(write_batch(batch, dry_run=dry_run))
        exc.report = report
        raise
    finally:
        bar.close()
    if batch:
        report.add(write_batch(batch, dry_run=dry_run))
    logger.debug("import: %s", report.summary())
    return report
