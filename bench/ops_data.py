"""Fast, valid ledgers for the operations benchmarks: raw INSERTs with correct hashes.

``build_ledger(directory, total)`` makes a data directory with a migrated main
and archive SQLite database and ``total`` signals, one every ``step`` seconds
ending now, so the recent flow is the same whatever the total (a bigger ledger
is a longer history, not a faster one). Each signal has its delivery row, as
the write path queues one: delivered to Alpine a few seconds after it was
stored, except the last hour's, still pending.
"""

import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signals.ledger.hashing import compute_hash  # noqa: E402  (plain module, no Django setup needed)

SYMBOLS = [f"SYM{n:02d}" for n in range(50)] + ["AAPL", "MSFT", "NVDA", "TSLA", "BTC-USD"]
STEP_SECONDS = 63  # about 57 signals an hour


def bench_env(directory, **extra):
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "SIGNALHUB_ARCHIVE_DATABASE_URL", "SIGNALHUB_REDIS_URL")}
    env.update(SIGNALHUB_DATA_DIR=str(directory), DJANGO_SECRET_KEY="bench-only-secret-key-" + "x" * 40,
               SIGNALHUB_LOG_LEVEL="warning", **extra)
    return env


def manage(directory, *args, **kwargs):
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=bench_env(directory),
                          check=True, **kwargs)


def _sqlite_time(value):
    # How Django stores an aware datetime in SQLite: naive UTC text.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def rows(total, *, end, seed=1):
    """Yield ``total`` valid signal rows, oldest first, the last created at ``end``."""
    rng = random.Random(seed)
    start = end - timedelta(seconds=STEP_SECONDS * (total - 1))
    for n in range(total):
        created = start + timedelta(seconds=STEP_SECONDS * n)
        timestamp = created - timedelta(seconds=rng.randint(0, 5))
        signal_id = f"BENCH-{n:09d}"
        symbol, action = rng.choice(SYMBOLS), rng.choice(("BUY", "SELL"))
        entry = round(rng.uniform(10, 500), 2)
        target, stop = (round(entry * 1.05, 2), round(entry * 0.97, 2)) if action == "BUY" else (
            round(entry * 0.95, 2), round(entry * 1.03, 2))
        confidence = round(rng.uniform(50, 99), 1)
        digest = compute_hash(signal_id=signal_id, symbol=symbol, action=action, entry_price=entry, target_price=target,
                              stop_price=stop, confidence=confidence, strategy="momentum", timestamp=timestamp)
        open_ = end - created < timedelta(days=30)
        outcome = None if open_ else rng.choice(("win", "loss", "expired"))
        yield (n + 1, signal_id, symbol, action, entry, target, stop, confidence, "momentum", "stock",
               "weighted_consensus", _sqlite_time(timestamp), digest, "", "", "", None, None, "both",
               "signal_generator", "{}", outcome, None, None, None, None, None, _sqlite_time(created))


COLUMNS = ("id, signal_id, symbol, action, entry_price, target_price, stop_price, confidence, strategy, asset_type, "
           "data_source, timestamp, sha256, legacy_sha256, reasoning, regime, consensus_agreement, sources_count, "
           "service_type, generated_by, metadata, outcome, exit_price, exit_timestamp, profit_loss_pct, order_id, "
           "executor_id, created_at")


def build_ledger(directory, total, *, end=None):
    """Create ``directory`` with migrated main and archive databases and ``total`` signals; return the main path."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # a data directory, private as SignalHub makes them
    manage(directory, "migrate", "-v0")
    manage(directory, "migrate", "--database", "archive", "-v0")
    main = directory / "signalhub.sqlite3"
    end = end or datetime.now(UTC)
    started = time.monotonic()
    with sqlite3.connect(main) as db:
        db.execute("PRAGMA synchronous=OFF")
        placeholders = ", ".join("?" * 28)
        batch = []
        for row in rows(total, end=end):
            batch.append(row)
            if len(batch) == 50_000:
                db.executemany(f"INSERT INTO signals_signal ({COLUMNS}) VALUES ({placeholders})", batch)
                batch = []
        if batch:
            db.executemany(f"INSERT INTO signals_signal ({COLUMNS}) VALUES ({placeholders})", batch)
        # One delivery per signal, as the write path's outbox queues it.
        pending_since = _sqlite_time(end - timedelta(hours=1))
        db.execute(
            "INSERT INTO sync_delivery (signal_id, state, attempt_count, next_attempt_at, lease_owner, last_status_code, "
            "last_error, error_class, first_attempt_at, last_attempt_at, delivered_at, alpine_signal_id, queued_at, "
            "updated_at) "
            "SELECT id, 'delivered', 1, created_at, '', 200, '', '', "
            "datetime(created_at, '+2 seconds'), datetime(created_at, '+2 seconds'), datetime(created_at, '+2 seconds'), "
            "'A-' || signal_id, created_at, datetime(created_at, '+2 seconds') "
            "FROM signals_signal WHERE created_at < ? ORDER BY id", [pending_since])
        db.execute(
            "INSERT INTO sync_delivery (signal_id, state, attempt_count, next_attempt_at, lease_owner, last_error, "
            "error_class, alpine_signal_id, queued_at, updated_at) "
            "SELECT id, 'pending', 0, created_at, '', '', '', '', created_at, created_at "
            "FROM signals_signal WHERE created_at >= ? ORDER BY id", [pending_since])
    with sqlite3.connect(main) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("ANALYZE")
    print(f"  built {total:,} signals and their deliveries in {time.monotonic() - started:.1f} s ({main.stat().st_size / 1_048_576:.0f} MB)")
    return main


def created_at_of(main, n):
    """Return the created_at text of the n-th oldest signal (the cut-off that moves n signals)."""
    with sqlite3.connect(main) as db:
        return db.execute("SELECT created_at FROM signals_signal ORDER BY created_at, id LIMIT 1 OFFSET ?", [n]).fetchone()[0]
