"""The baseline bench/archive.py measures archive_signals against: a raw SQL move.

    python bench/archive_raw_move.py DATA_DIR CUTOFF [BATCH]

Moves the signals created before CUTOFF, with their delivery rows, from
DATA_DIR's main SQLite file to its archive file: ATTACH the archive, then per
batch (10,000 signals by default) INSERT ... SELECT the signals and their
deliveries and DELETE them, in one transaction. No checks, no read-back.
Prints the number of signals and deliveries moved as JSON.
"""

import json
import sqlite3
import sys
from pathlib import Path


def raw_move(directory, cutoff, batch):
    db = sqlite3.connect(directory / "signalhub.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("ATTACH DATABASE ? AS archive", [str(directory / "signalhub_archive.sqlite3")])
    db.execute("PRAGMA archive.journal_mode=WAL")
    db.execute("PRAGMA archive.synchronous=NORMAL")
    signals = deliveries = 0
    while True:
        db.execute("BEGIN IMMEDIATE")
        db.execute("CREATE TEMP TABLE batch AS SELECT id FROM main.signals_signal WHERE created_at < ? "
                   "ORDER BY created_at, id LIMIT ?", [cutoff, batch])
        count = db.execute("SELECT COUNT(*) FROM batch").fetchone()[0]
        if count:
            db.execute("INSERT INTO archive.signals_signal SELECT * FROM main.signals_signal "
                       "WHERE id IN (SELECT id FROM batch)")
            deliveries += db.execute("INSERT INTO archive.sync_delivery SELECT * FROM main.sync_delivery "
                                     "WHERE signal_id IN (SELECT id FROM batch)").rowcount
            db.execute("DELETE FROM main.sync_delivery WHERE signal_id IN (SELECT id FROM batch)")
            db.execute("DELETE FROM main.signals_signal WHERE id IN (SELECT id FROM batch)")
        db.execute("DROP TABLE batch")
        db.execute("COMMIT")
        signals += count
        if not count:
            break
    db.close()
    return signals, deliveries


if __name__ == "__main__":
    moved, deliveries = raw_move(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 10_000)
    print(json.dumps({"moved": moved, "deliveries": deliveries}))
