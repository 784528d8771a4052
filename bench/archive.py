"""archive_signals against a raw SQL move of the same rows, and its memory at two sizes.

    .venv/bin/python bench/archive.py                  # 1,000,000 signals, 500,000 moved
    .venv/bin/python bench/archive.py --total 200000   # quicker, same ratios

One ledger is built (raw INSERTs of valid rows with correct hashes, each
signal with its delivery row), then copied for each run so every run starts
from the same file:

- ``archive_signals --no-vacuum --batch-size 10000`` moving half the signals
  and their deliveries, in a subprocess (its peak RSS read with wait4);
- the raw move of the same rows on a copy, also in a subprocess
  (``archive_raw_move.py``: ATTACH the archive, then per 10,000-signal batch
  INSERT ... SELECT and DELETE the signals and their deliveries in one
  transaction);
- ``archive_signals`` moving a tenth as many, for the memory ratio.

Speed is compared on wall time, process start-up included on both sides.
Goals: archive_signals at least 0.6x the raw move's speed; peak memory moving
the half within 1.3x of moving the tenth.
"""

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ops_data import ROOT, bench_env, build_ledger, created_at_of  # noqa: E402

BATCH = 10_000


def copy_ledger(base, name):
    target = base.parent / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    for file in ("signalhub.sqlite3", "signalhub_archive.sqlite3"):
        shutil.copyfile(base / file, target / file)
    return target


def run_archive_signals(directory, cutoff):
    """Run archive_signals in a subprocess; return (wall seconds, move seconds, peak RSS in MB, result)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "archive_signals", "--before", cutoff.replace(" ", "T"),
         "--no-vacuum", "--batch-size", str(BATCH), "--json"],
        cwd=ROOT, env=bench_env(directory), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"archive_signals failed: {stderr.decode()[-2000:]}")
    result = json.loads(stdout)
    return wall, result["seconds"], usage.ru_maxrss / 1024, result


def run_raw_move(directory, cutoff):
    """Run the raw SQL move in a subprocess; return (wall seconds, its JSON result)."""
    started = time.monotonic()
    finished = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "archive_raw_move.py"),
                               str(directory), cutoff, str(BATCH)], capture_output=True, check=True)
    return time.monotonic() - started, json.loads(finished.stdout)


def delivery_count(directory, database):
    with sqlite3.connect(directory / database) as db:
        return db.execute("SELECT COUNT(*) FROM sync_delivery").fetchone()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--workdir", help="Where to build the ledgers (default: a temporary directory).")
    args = parser.parse_args()
    half, tenth = args.total // 2, args.total // 20

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="signalhub-bench-archive-"))
    print(f"Building a ledger of {args.total:,} signals in {workdir}")
    base = workdir / "base"
    build_ledger(base, args.total)
    main_file = base / "signalhub.sqlite3"
    assert delivery_count(base, "signalhub.sqlite3") == args.total, "one delivery per signal"
    cutoff_half, cutoff_tenth = created_at_of(main_file, half), created_at_of(main_file, tenth)

    ours = copy_ledger(base, "archive_signals")
    wall, seconds, peak_half, result = run_archive_signals(ours, cutoff_half)
    assert result["moved"] == half and result["related"].get("sync.Delivery") == half, result
    assert delivery_count(ours, "signalhub_archive.sqlite3") == half
    print(f"archive_signals moved {result['moved']:,} signals and {result['related']['sync.Delivery']:,} deliveries "
          f"in {seconds:.1f} s (command wall time {wall:.1f} s), peak RSS {peak_half:.0f} MB")

    raw = copy_ledger(base, "raw")
    raw_wall, raw_result = run_raw_move(raw, cutoff_half)
    assert raw_result == {"moved": half, "deliveries": half}, raw_result
    print(f"raw SQL move (ATTACH, INSERT ... SELECT, DELETE, {BATCH:,}-signal batches) moved {half:,} signals and "
          f"{half:,} deliveries: wall time {raw_wall:.1f} s")

    small = copy_ledger(base, "archive_signals_small")
    _, small_seconds, peak_tenth, small_result = run_archive_signals(small, cutoff_tenth)
    print(f"archive_signals moved {small_result['moved']:,} in {small_seconds:.1f} s, peak RSS {peak_tenth:.0f} MB")

    speed = raw_wall / wall
    memory = peak_half / peak_tenth
    print()
    print(f"speed vs raw SQL, wall time with start-up on both sides: {speed:.2f}x "
          f"(goal >= 0.6x: {'met' if speed >= 0.6 else 'NOT met'})")
    print(f"peak memory {half:,} vs {tenth:,}: {memory:.2f}x (goal <= 1.3x: {'met' if memory <= 1.3 else 'NOT met'})")
    if not args.workdir:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
