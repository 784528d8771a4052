"""Write-path figures: throughput against the raw ceiling, log_signal latency, peak memory.

    .venv/bin/python bench/ingest.py                       # SQLite, full size
    .venv/bin/python bench/ingest.py --signals 20000 --memory-sizes 10000,100000
    .venv/bin/python bench/ingest.py --database-url postgres://postgres@127.0.0.1:5432/signalhub_bench

The database is emptied (signals, conflicts, quarantine) before each phase: point
it at a scratch database. Figures are printed, with the ratios the issue sets as
goals, and compared only with baselines measured in the same run.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
RESULTS = BASE_DIR / "bench" / "results"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="Default: a SQLite file in bench/results/.")
    parser.add_argument("--signals", type=int, default=200_000, help="Signals for the throughput phase.")
    parser.add_argument("--pairs", type=int, default=3,
                        help="Throughput: end to end and the ceiling, alternated this many times (median ratio).")
    parser.add_argument("--rate", type=int, default=5000, help="Signals per second during the latency phase.")
    parser.add_argument("--latency-seconds", type=float, default=6.0)
    parser.add_argument("--warmup-seconds", type=float, default=1.0,
                        help="Signals logged at the same rate before latency is recorded (steady state).")
    parser.add_argument("--fsync-policies", default="floor,batch,never,always",
                        help="Latency runs in this order; floor times clean_signal alone.")
    parser.add_argument("--memory-sizes", default="100000,1000000", help="Comma-separated signal counts.")
    parser.add_argument("--phases", default="throughput,methods,latency,memory")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def setup_django(database_url, journal_dir):
    os.environ["DATABASE_URL"] = database_url
    os.environ["SIGNALHUB_JOURNAL_DIR"] = str(journal_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalhub.settings")
    os.environ.setdefault("SIGNALHUB_LOG_LEVEL", "warning")
    import django

    django.setup()


def payload(n, base=datetime(2025, 11, 18, 14, 30, tzinfo=UTC)):
    return {"signal_id": f"BENCH-{n:09d}", "symbol": ("AAPL", "MSFT", "BTC-USD", "NESN.SW")[n % 4],
            "action": "BUY" if n % 3 else "SELL", "entry_price": 100.0 + (n % 1000) / 10, "target_price": 250.0,
            "stop_price": 50.0, "confidence": float(n % 100), "strategy": "bench",
            "timestamp": (base + timedelta(seconds=n)).isoformat(), "regime": "bull", "sources_count": 3}


def empty_tables():
    from django.db import connection

    from signals.models import QuarantinedRecord, Signal, SignalConflict
    from sync.models import Delivery, DeliveryAttempt

    # Deliveries first: they point at the signals.
    models = (DeliveryAttempt, Delivery, Signal, SignalConflict, QuarantinedRecord)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE " + ", ".join(model._meta.db_table for model in models))
    else:
        for model in models:
            model.objects.all()._raw_delete(model.objects.db)
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def stored_count():
    from signals.models import Signal

    return Signal.objects.count()


# Phases ----------------------------------------------------------------------------------------


def end_to_end(count):
    """log_signal for each of ``count`` signals, then flush_pending until all are stored; return signals/s."""
    from signals.ingest import flush_pending, log_signal

    payloads = [payload(n) for n in range(count)]
    empty_tables()
    started = time.perf_counter()
    for data in payloads:
        log_signal(data)
    logged = time.perf_counter()
    stored_while_logging = stored_count()
    flush_pending()
    finished = time.perf_counter()
    assert stored_count() == count, f"stored {stored_count()} of {count}"
    return {"signals_per_second": count / (finished - started), "log_seconds": logged - started,
            "flush_seconds": finished - logged, "stored_while_logging": stored_while_logging}


def ceiling(count):
    """The same rows written by the raw driver: sqlite3 executemany or PostgreSQL COPY (one transaction)."""
    from django.db import connection, models

    from signals.ledger.validation import clean_signal
    from signals.models import Signal
    from signals.writepath.columns import FIELDS as _FIELDS

    cleaned = [clean_signal(payload(n)) for n in range(count)]
    now = datetime.now(UTC)
    columns = ", ".join(f'"{f.column}"' for f in _FIELDS)
    defaults = {f.name: f.get_default() for f in _FIELDS}
    empty_tables()
    if connection.vendor == "sqlite":
        import sqlite3

        rows = []
        for values in cleaned:
            row = []
            for f in _FIELDS:
                value = values.get(f.name, now if f.name == "created_at" else defaults[f.name])
                if isinstance(f, models.DateTimeField) and value is not None:
                    value = str(value.astimezone(UTC).replace(tzinfo=None))
                elif isinstance(f, models.JSONField):
                    value = json.dumps(value)
                row.append(value)
            rows.append(row)
        db = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        marks = ", ".join("?" for _ in _FIELDS)
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(f'INSERT INTO "{Signal._meta.db_table}" ({columns}) VALUES ({marks})', rows)
        db.execute("COMMIT")
        elapsed = time.perf_counter() - started
        db.close()
        method = "sqlite3 executemany"
    else:
        import psycopg
        from psycopg.types.json import Jsonb

        rows = [[values.get(f.name, now if f.name == "created_at" else defaults[f.name]) for f in _FIELDS]
                for values in cleaned]
        json_index = [i for i, f in enumerate(_FIELDS) if isinstance(f, models.JSONField)]
        config = connection.settings_dict
        with psycopg.connect(host=config["HOST"], port=config["PORT"] or 5432, user=config["USER"],
                             password=config["PASSWORD"] or None, dbname=config["NAME"]) as db:
            started = time.perf_counter()
            with db.cursor() as cursor, cursor.copy(f"COPY {Signal._meta.db_table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    for i in json_index:
                        row[i] = Jsonb(row[i])
                    copy.write_row(row)
            db.commit()
            elapsed = time.perf_counter() - started
        method = "PostgreSQL COPY"
    assert stored_count() == count
    return {"method": method, "signals_per_second": count / elapsed}


def writer_methods(count, batch=5000):
    """The batch writer alone (no log_signal running), per way of writing new rows.

    ``orm`` and ``fast`` write validated records held in memory (bulk_create;
    multi-row INSERT on SQLite, COPY on PostgreSQL), as imports do; ``lines``
    writes the same signals as journal lines, as the flusher does (the
    database unpacks each batch).
    """
    from signals.ledger.validation import clean_signal
    from signals.writepath import journal
    from signals.writepath.writer import Incoming, write_batch

    cleaned = [clean_signal(payload(n)) for n in range(count)]
    results = {}
    for method in ("orm", "fast"):
        empty_tables()
        started = time.perf_counter()
        for start in range(0, count, batch):
            write_batch([Incoming(values, "bench") for values in cleaned[start:start + batch]], method=method)
        results[method] = count / (time.perf_counter() - started)
        assert stored_count() == count
    payloads = [journal.check(journal.encode(values)[:-1])[1] for values in cleaned]
    empty_tables()
    started = time.perf_counter()
    for start in range(0, count, batch):
        write_batch([Incoming(None, "bench", payload=line) for line in payloads[start:start + batch]], method="fast")
    results["lines"] = count / (time.perf_counter() - started)
    assert stored_count() == count
    return results


def latency(rate, seconds, fsync, warmup=0.0):
    """log_signal latency while ``rate`` signals/s flow (the flusher writing meanwhile).

    ``fsync="floor"`` times clean_signal alone in the same loop: what validation
    and this machine's scheduling cost without the journal or the flusher.
    """
    from django.conf import settings

    from signals.ingest import flush_pending, log_signal
    from signals.ledger.validation import clean_signal

    call = clean_signal if fsync == "floor" else log_signal
    if fsync != "floor":
        settings.SIGNALHUB_JOURNAL_FSYNC = fsync
    empty_tables()
    skip = int(rate * warmup)
    total = int(rate * seconds) + skip
    samples = []
    interval = 1.0 / rate
    start = time.perf_counter()
    for n in range(total):
        due = start + n * interval
        while True:
            now = time.perf_counter()
            if now >= due:
                break
            if due - now > 0.0005:
                time.sleep(due - now - 0.0004)
        data = payload(10_000_000 + n)
        t0 = time.perf_counter_ns()
        call(data)
        elapsed = time.perf_counter_ns() - t0
        if n >= skip:
            samples.append(elapsed)
    achieved = total / (time.perf_counter() - start)
    flush_pending()
    samples.sort()

    def pct(p):
        return samples[min(len(samples) - 1, int(len(samples) * p))] / 1000

    return {"fsync": fsync, "samples": len(samples), "achieved_rate": achieved, "p50_us": pct(0.50), "p99_us": pct(0.99),
            "p999_us": pct(0.999), "max_us": samples[-1] / 1000, "mean_us": statistics.fmean(samples) / 1000}


def memory_child(count):
    """In a fresh process: log ``count`` signals, flush, print peak RSS (KiB) as JSON."""
    from signals.ingest import flush_pending, log_signal

    empty_tables()
    for n in range(count):
        log_signal(payload(n))
    flush_pending()
    print(json.dumps({"signals": count, "stored": stored_count(), "maxrss_kib": peak_rss_kib()}))


def peak_rss_kib():
    """This process's peak resident memory. VmHWM, because Linux carries getrusage's
    ru_maxrss over from the parent across fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory(sizes, args, work):
    results = []
    for size in sizes:
        env = {**os.environ, "PYTHONPATH": str(BASE_DIR)}
        command = [sys.executable, __file__, "--memory-child", str(size), "--database-url", args.database_url]
        out = subprocess.run(command, env=env, cwd=BASE_DIR, capture_output=True, text=True, check=True,
                             timeout=3600).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main():
    args = parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.database_url = args.database_url or f"sqlite:///{RESULTS / 'bench.sqlite3'}"
    work = Path(tempfile.mkdtemp(prefix="journal-", dir=RESULTS))
    setup_django(args.database_url, work)
    from django.core.management import call_command

    if args.memory_child:
        memory_child(args.memory_child)
        return
    call_command("migrate", verbosity=0)
    from django.db import connection

    print(f"database: {connection.vendor}; journal: {work}")
    phases = args.phases.split(",")
    report = {"database": connection.vendor}
    if "throughput" in phases:
        # Alternated, so a machine whose speed drifts during the run (shared
        # cores) affects both sides of each ratio alike; the median is reported.
        report["throughput"] = []
        for _ in range(args.pairs):
            pair = {"end_to_end": end_to_end(args.signals), "ceiling": ceiling(args.signals)}
            pair["ratio"] = pair["end_to_end"]["signals_per_second"] / pair["ceiling"]["signals_per_second"]
            report["throughput"].append(pair)
            e2e = pair["end_to_end"]
            print(f"throughput, {args.signals} signals: log_signal + flush_pending {e2e['signals_per_second']:,.0f}/s "
                  f"(logging {e2e['log_seconds']:.2f} s, {e2e['stored_while_logging']:,} stored meanwhile; flushing "
                  f"the rest {e2e['flush_seconds']:.2f} s); ceiling ({pair['ceiling']['method']}) "
                  f"{pair['ceiling']['signals_per_second']:,.0f}/s; ratio {pair['ratio']:.2f}x", flush=True)
        report["end_to_end_vs_ceiling"] = statistics.median(pair["ratio"] for pair in report["throughput"])
        print(f"throughput ratio, median of {args.pairs}: {report['end_to_end_vs_ceiling']:.2f}x (goal >= 0.5x)")
    if "methods" in phases:
        report["writer_methods"] = writer_methods(args.signals)
        methods = report["writer_methods"]
        print(f"batch writer alone, {args.signals} signals in batches of 5000: bulk_create {methods['orm']:,.0f}/s, "
              f"fast path from records {methods['fast']:,.0f}/s ({methods['fast'] / methods['orm']:.2f}x), "
              f"from journal lines {methods['lines']:,.0f}/s ({methods['lines'] / methods['orm']:.2f}x)")
    if "latency" in phases:
        report["latency"] = [latency(args.rate, args.latency_seconds, fsync, args.warmup_seconds) for fsync in args.fsync_policies.split(",")]
        for item in report["latency"]:
            what = "clean_signal alone (floor)" if item["fsync"] == "floor" else f"log_signal, fsync={item['fsync']}"
            print(f"latency of {what} at {item['achieved_rate']:,.0f}/s: "
                  f"p50 {item['p50_us']:.0f} us, p99 {item['p99_us']:.0f} us, p99.9 {item['p999_us']:.0f} us, "
                  f"max {item['max_us']:.0f} us" + (" (goal p99 <= 200 us)" if item["fsync"] == "batch" else ""))
    if "memory" in phases:
        sizes = [int(size) for size in args.memory_sizes.split(",")]
        report["memory"] = memory(sizes, args, work)
        first = report["memory"][0]
        for item in report["memory"]:
            print(f"peak memory, {item['signals']:,} signals: {item['maxrss_kib'] / 1024:.1f} MiB "
                  f"({item['maxrss_kib'] / first['maxrss_kib']:.2f}x of {first['signals']:,}; goal <= 1.2x)")
    empty_tables()
    (RESULTS / f"ingest-{connection.vendor}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
