"""Delivery to Alpine: throughput against a bare loop, and delivery lag at a steady rate.

    .venv/bin/python bench/sync.py [--signals N] [--rate R] [--seconds S] [--db sqlite|postgres]

1. Throughput: N signals delivered by `sync_signals --drain` (run in this
   process through call_command, default settings apart from the URL) against
   a bare loop of requests.Session posts of N other signals' bodies, with the
   same concurrency (SIGNALHUB_SYNC_CONCURRENCY) to the same stub, in one run.
   The goal is at least 0.7x the bare loop's rate.
2. Lag: signals are stored at R per second for S seconds (batches of 10, each
   in a transaction that queues their deliveries, as the write path does), and
   the time from stored (created_at) to delivered (delivered_at) is reported as
   p50/p95, twice:
   - default settings: a worker process runs the scheduled task
     (sync.tasks.deliver_for_a_minute: a pass every SIGNALHUB_SYNC_INTERVAL s);
   - push: a django-q2 cluster with SIGNALHUB_SYNC_PUSH on (the scheduled
     delivery removed, so the figure is the push's alone).

The stub (manage.py run_alpine_stub) runs in its own process so that it does
not share this process's interpreter lock. A scratch database is used
(var/bench/sync.sqlite3, or a scratch PostgreSQL database at --pg-url); the
project's own databases are never touched.
"""

import argparse
import os
import secrets
import signal as signals_module
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
GOAL_RATIO = 0.7
BATCH = 10


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_database(db, pg_url):
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    if db == "sqlite":
        path = BENCH_DIR / "sync.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg

    name = "signalhub_bench_sync"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return pg_url.rsplit("/", 1)[0] + "/" + name


def manage(*args, env, log=None):
    """Start a manage.py subprocess; its output goes to var/bench/<log>.log (or nowhere)."""
    out = open(BENCH_DIR / f"{log}.log", "w") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process):
    """Stop a process started by manage() and its children (its own process group)."""
    for sig in (signals_module.SIGTERM, signals_module.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_healthy(url, timeout=30):
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/api/v1/external-signals/sync/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the stub at {url} did not answer")


def cleaned(n, start=[0]):
    """Return n cleaned signal dicts with fresh ids (hashes differ, so the stub stores each)."""
    from signals.ledger.validation import clean_signal

    rows = []
    for _ in range(n):
        start[0] += 1
        rows.append(clean_signal({
            "signal_id": f"BENCH-{os.getpid()}-{start[0]:08d}", "symbol": "AAPL", "action": "BUY",
            "entry_price": 100.0 + start[0] % 97, "target_price": 120.0, "stop_price": 90.0, "confidence": 75.0,
            "strategy": "bench", "timestamp": datetime(2025, 11, 18, 14, 30, tzinfo=UTC)}))
    return rows


def store(rows, *, queue):
    from django.db import transaction
    from django.utils import timezone

    from signals.models import Signal
    from sync.outbox import enqueue_deliveries

    now = timezone.now()
    with transaction.atomic():
        Signal.objects.bulk_create([Signal(**row, created_at=now) for row in rows])
        if queue:
            enqueue_deliveries([row["signal_id"] for row in rows])


def throughput(n, env):
    from django.conf import settings
    from django.core.management import call_command

    from signals.models import Signal
    from sync.client import build_payload
    from sync.config import alpine_config
    from sync.models import Delivery

    concurrency = settings.SIGNALHUB_SYNC_CONCURRENCY
    bare_rows, sync_rows = cleaned(n), cleaned(n)
    store(bare_rows, queue=False)
    store(sync_rows, queue=True)
    bodies = [build_payload(s) for s in Signal.objects.filter(signal_id__in=[r["signal_id"] for r in bare_rows])]
    config = alpine_config()
    import requests

    local = threading.local()

    def post(body):
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        response = session.post(config.signal_url(), json=body, headers={"X-API-Key": config.api_key},
                                timeout=(5, config.timeout))
        return response.status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        codes = list(pool.map(post, bodies))
    bare = time.perf_counter() - started
    assert set(codes) == {201}, set(codes)

    started = time.perf_counter()
    call_command("sync_signals", "--drain", stdout=open(os.devnull, "w"))
    drained = time.perf_counter() - started
    delivered = Delivery.objects.filter(state="delivered").count()
    assert delivered == n, f"only {delivered} of {n} delivered"
    return {"concurrency": concurrency, "bare_per_s": n / bare, "sync_per_s": n / drained,
            "ratio": (n / drained) / (n / bare)}


def lag(rate, seconds, env, *, push):
    from django.conf import settings
    from django_q.models import Schedule

    from sync.models import Delivery

    interval = BATCH / rate
    batches = [cleaned(BATCH) for _ in range(int(rate * seconds / BATCH))]
    ids = [row["signal_id"] for batch in batches for row in batch]
    if push:
        Schedule.objects.filter(name="signalhub.sync.deliver").delete()
        worker = manage("qcluster", env={**env, "SIGNALHUB_SYNC_PUSH": "1", "SIGNALHUB_LOG_LEVEL": "info"}, log="sync-cluster")
        settings.SIGNALHUB_SYNC_PUSH = True
        time.sleep(4)  # the cluster's workers start
    else:
        worker = manage("shell", "-c", "from sync.tasks import deliver_for_a_minute; deliver_for_a_minute()", env=env,
                        log="sync-worker")
        settings.SIGNALHUB_SYNC_PUSH = False
    try:
        started = time.monotonic()
        for i, batch in enumerate(batches):
            store(batch, queue=True)
            time.sleep(max(0.0, started + (i + 1) * interval - time.monotonic()))
        produced_in = time.monotonic() - started
        deadline = time.monotonic() + 60
        mine = Delivery.objects.filter(signal__signal_id__in=ids)
        while mine.filter(state="delivered").count() < len(ids) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        settings.SIGNALHUB_SYNC_PUSH = False
        stop(worker)
    lags = [(delivered - created).total_seconds() for delivered, created in
            mine.filter(state="delivered").values_list("delivered_at", "signal__created_at")]
    if len(lags) < 2:
        return {"signals": len(ids), "delivered": len(lags), "rate": len(ids) / produced_in, "p50": None, "p95": None}
    q = statistics.quantiles(lags, n=100)
    return {"signals": len(ids), "delivered": len(lags), "rate": len(ids) / produced_in, "p50": q[49], "p95": q[94]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=5000, help="Signals per side of the throughput run.")
    parser.add_argument("--rate", type=float, default=200.0, help="Signals stored per second in the lag runs.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Length of each lag run.")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--skip-lag", action="store_true")
    args = parser.parse_args()

    port = free_port()
    key = secrets.token_urlsafe(24)
    env = {**os.environ, "DATABASE_URL": prepare_database(args.db, args.pg_url),
           "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
           "ALPINE_API_URL": f"http://127.0.0.1:{port}", "ARGO_API_KEY": key,
           "DJANGO_SETTINGS_MODULE": "signalhub.settings", "SIGNALHUB_LOG_LEVEL": "warning"}
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)  # the cluster's status lives in the database cache
    stub = manage("run_alpine_stub", "--port", str(port), "--key", key, env=env)
    try:
        wait_healthy(env["ALPINE_API_URL"])
        print(f"database: {args.db}; stub on port {port} in its own process")
        t = throughput(args.signals, env)
        verdict = "meets" if t["ratio"] >= GOAL_RATIO else "misses"
        print(f"throughput, {args.signals} signals, concurrency {t['concurrency']}: bare loop {t['bare_per_s']:.0f}/s, "
              f"sync_signals --drain {t['sync_per_s']:.0f}/s, ratio {t['ratio']:.2f} ({verdict} the {GOAL_RATIO}x goal)")
        if not args.skip_lag:
            for push in (False, True):
                r = lag(args.rate, args.seconds, env, push=push)
                name = "push on (SIGNALHUB_SYNC_PUSH=1)" if push else "default settings (scheduled pass every 10 s)"
                p50 = f"{r['p50']:.2f} s" if r["p50"] is not None else "n/a"
                p95 = f"{r['p95']:.2f} s" if r["p95"] is not None else "n/a"
                print(f"lag, {name}: {r['signals']} signals at {r['rate']:.0f}/s, {r['delivered']} delivered; "
                      f"stored->delivered p50 {p50}, p95 {p95}")
    finally:
        stop(stub)


if __name__ == "__main__":
    main()
