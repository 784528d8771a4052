"""import_signals: legacy Argo SQLite files (both column sets, WAL), JSON lines and CSV."""

import csv
import hashlib
import io
import json
import sqlite3
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from signals.ledger import hashing
from signals.models import Signal, SignalConflict
from signals.writepath.importers import import_signals

pytestmark = pytest.mark.django_db

BASE_SCHEMA = """CREATE TABLE signals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, signal_id TEXT UNIQUE NOT NULL,
    symbol TEXT NOT NULL, action TEXT NOT NULL, strategy TEXT NOT NULL, asset_type TEXT NOT NULL,
    entry_price REAL NOT NULL, target_price REAL NOT NULL, stop_price REAL NOT NULL, confidence REAL NOT NULL,
    data_source TEXT DEFAULT 'weighted_consensus', timestamp TEXT NOT NULL, outcome TEXT,
    exit_price REAL, profit_loss_pct REAL, sha256 TEXT NOT NULL, order_id TEXT,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP)"""
LATER_COLUMNS = [
    "ALTER TABLE signals ADD COLUMN service_type TEXT DEFAULT 'both'",
    "ALTER TABLE signals ADD COLUMN executor_id TEXT",
    "ALTER TABLE signals ADD COLUMN generated_by TEXT DEFAULT 'signal_generator'",
    "ALTER TABLE signals ADD COLUMN regime TEXT",
    "ALTER TABLE signals ADD COLUMN reasoning TEXT",
    "ALTER TABLE signals ADD COLUMN exit_timestamp TEXT",
]


def legacy_row(n, **changes):
    row = {"signal_id": f"{n:016x}", "symbol": "AAPL", "action": "BUY", "strategy": "momentum", "asset_type": "stock",
           "entry_price": 100.0 + n, "target_price": 120.0 + n, "stop_price": 90.0, "confidence": 75.0,
           "timestamp": "2025-11-18T14:30:00", "sha256": "f" * 64}
    row.update(changes)
    return row


def make_argo(path, rows, *, later_columns=False, wal=False):
    """Write a legacy file; with ``wal`` return the still-open connection so the rows stay in the -wal file."""
    db = sqlite3.connect(path)
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute(BASE_SCHEMA)
    for statement in LATER_COLUMNS if later_columns else ():
        db.execute(statement)
    for row in rows:
        db.execute(f"INSERT INTO signals ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))
    db.commit()
    if wal:
        return db
    db.close()
    return None


INVALID_ROWS = [
    legacy_row(101, action="HOLD"),
    legacy_row(102, entry_price=-5.0),
    legacy_row(103, confidence=150.0),
    legacy_row(104, timestamp="not a time"),
    legacy_row(105, symbol="BAD SYMBOL"),
]


def test_base_columns_file_keeps_lifecycle_and_provenance(tmp_path):
    right_hash = hashing.compute_hash(signal_id=f"{2:016x}", symbol="AAPL", action="BUY", entry_price=102.0,
                                      target_price=122.0, stop_price=90.0, confidence=75.0, strategy="momentum",
                                      timestamp=datetime(2025, 11, 18, 14, 30, tzinfo=UTC))
    rows = [
        legacy_row(1, outcome="win", exit_price=130.0, profit_loss_pct=29.7, order_id="ORD-1",
                   created_at="2025-11-18 14:31:00"),
        legacy_row(2, sha256=right_hash, created_at="2025-11-18T14:32:00.123456+00:00"),
        legacy_row(3, action="sell", created_at="2025-11-19 08:00:00"),
        *INVALID_ROWS,
    ]
    path = tmp_path / "argo.db"
    make_argo(path, rows)
    report = import_signals(path, "argo-sqlite", progress=False)
    assert (report.imported, report.duplicates, report.conflicts, report.rejected) == (3, 0, 0, 5)
    assert set(report.reasons) == {"action", "entry_price", "confidence", "timestamp", "symbol"}
    assert "row id 4" in report.reasons["action"]["first"]

    won = Signal.objects.get(signal_id=f"{1:016x}")
    assert (won.outcome, won.exit_price, won.profit_loss_pct, won.order_id) == ("win", 130.0, 29.7, "ORD-1")
    assert won.created_at == datetime(2025, 11, 18, 14, 31, tzinfo=UTC)
    assert won.timestamp == datetime(2025, 11, 18, 14, 30, tzinfo=UTC)  # naive legacy time is UTC
    assert won.legacy_sha256 == "f" * 64 and won.hash_matches()
    matching = Signal.objects.get(signal_id=f"{2:016x}")
    assert matching.legacy_sha256 == "" and matching.outcome is None
    assert matching.created_at == datetime(2025, 11, 18, 14, 32, 0, 123456, tzinfo=UTC)
    assert Signal.objects.get(signal_id=f"{3:016x}").action == "SELL"

    again = import_signals(path, "argo-sqlite", progress=False)
    assert (again.imported, again.duplicates, again.rejected) == (0, 3, 5)
    assert Signal.objects.count() == 3


def test_later_columns_file_in_wal_mode_is_read_without_writing_to_it(tmp_path):
    rows = [
        legacy_row(1, executor_id="EXEC-7", order_id="ORD-7", regime="bull", reasoning="breakout\nconfirmed",
                   service_type="crypto", generated_by="argo_v5", outcome="loss", exit_price=85.0,
                   exit_timestamp="2025-11-20T10:00:00+00:00", profit_loss_pct=-15.8),
        legacy_row(2),
        legacy_row(106, stop_price=0.0),
    ]
    path = tmp_path / "argo_wal.db"
    writer = make_argo(path, rows, later_columns=True, wal=True)
    try:
        wal = tmp_path / "argo_wal.db-wal"
        assert wal.exists() and wal.stat().st_size > 0
        before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
        out = io.StringIO()
        call_command("import_signals", str(path), "--format", "argo-sqlite", "--json", stdout=out)
        after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    finally:
        writer.close()
    summary = json.loads(out.getvalue())
    assert (summary["imported"], summary["rejected"]) == (2, 1) and "stop_price" in summary["reasons"]
    assert before["argo_wal.db"] == after["argo_wal.db"] and before["argo_wal.db-wal"] == after["argo_wal.db-wal"]
    row = Signal.objects.get(signal_id=f"{1:016x}")
    assert (row.executor_id, row.order_id, row.regime, row.service_type, row.generated_by) == (
        "EXEC-7", "ORD-7", "bull", "crypto", "argo_v5")
    assert row.exit_timestamp == datetime(2025, 11, 20, 10, tzinfo=UTC) and row.outcome == "loss"


def test_ids_repeated_with_other_content_are_conflicts_not_overwrites(tmp_path):
    make_argo(tmp_path / "a.db", [legacy_row(1)])
    make_argo(tmp_path / "b.db", [legacy_row(1, entry_price=999.0), legacy_row(2)])
    import_signals(tmp_path / "a.db", "argo-sqlite", progress=False)
    report = import_signals(tmp_path / "b.db", "argo-sqlite", progress=False)
    assert (report.imported, report.conflicts) == (1, 1)
    assert Signal.objects.get(signal_id=f"{1:016x}").entry_price == 101.0
    assert SignalConflict.objects.get().incoming["entry_price"] == 999.0


def test_jsonl_with_bad_lines_imports_the_rest_and_reimport_adds_nothing(tmp_path):
    path = tmp_path / "signals.jsonl"
    good = [{"signal_id": f"JL-{n}", "symbol": "MSFT", "action": "BUY", "entry_price": 300 + n, "confidence": 60,
             "timestamp": "2025-11-18T14:30:00Z", "outcome": "expired" if n == 0 else None} for n in range(4)]
    lines = [json.dumps(item) for item in good] + ["{not json", json.dumps({"signal_id": "JL-bad", "symbol": "MSFT"}),
                                                    "", json.dumps([1, 2])]
    path.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    call_command("import_signals", str(path), "--format", "jsonl", stdout=out)
    summary = out.getvalue()
    assert "imported 4, duplicates 0, conflicts 0, rejected 3" in summary
    assert "line: 1" in summary and "action: 1" in summary
    assert Signal.objects.get(signal_id="JL-0").outcome == "expired"
    out = io.StringIO()
    call_command("import_signals", str(path), "--format", "jsonl", stdout=out)
    assert "imported 0, duplicates 4" in out.getvalue()
    assert Signal.objects.count() == 4


def test_csv_import_with_bad_rows_and_dry_run(tmp_path):
    path = tmp_path / "signals.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["signal_id", "symbol", "action", "entry_price", "target_price", "confidence", "timestamp",
                     "sources_count", "reasoning"])
    writer.writerow(["CSV-1", "BTC-USD", "BUY", "50000", "", "90", "2025-11-18 14:30:00", "3", "multi\nline"])
    writer.writerow(["CSV-2", "ETH-USD", "SELL", "3000", "2800", "55.5", "2025-11-18T14:30:00+01:00", "", ""])
    writer.writerow(["CSV-3", "ETH-USD", "SELL", "zero", "", "55", "2025-11-18T14:30:00", "", ""])
    writer.writerow(["CSV-4", "ETH-USD"])
    path.write_text(buffer.getvalue())
    dry = import_signals(path, "csv", dry_run=True, progress=False)
    assert (dry.imported, dry.rejected) == (2, 2) and not Signal.objects.exists()
    report = import_signals(path, "csv", progress=False)
    assert (report.imported, report.rejected) == (2, 2)
    assert set(report.reasons) == {"entry_price", "line"}
    first = Signal.objects.get(signal_id="CSV-1")
    assert first.sources_count == 3 and first.reasoning == "multi\nline" and first.target_price is None
    assert Signal.objects.get(signal_id="CSV-2").timestamp == datetime(2025, 11, 18, 13, 30, tzinfo=UTC)
    assert import_signals(path, "csv", progress=False).duplicates == 2


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_text("not sqlite at all" * 100), "not a readable SQLite database"),
    (lambda p: sqlite3.connect(p).execute("CREATE TABLE other (x)"), "no legacy `signals` table"),
])
def test_import_that_cannot_run_exits_non_zero(tmp_path, setup, message):
    path = tmp_path / "missing.db"
    setup(path)
    with pytest.raises(CommandError, match=message) as failed:
        call_command("import_signals", str(path), "--format", "argo-sqlite")
    assert failed.value.returncode == 1
    assert not Signal.objects.exists()
