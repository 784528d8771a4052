"""Time the Signal admin's change list at a large and a small table, on SQLite and PostgreSQL.

    .venv/bin/python bench/admin.py [--rows N] [--small N] [--db sqlite|postgres|both] [--explain]

For each database and size, a fresh scratch database is made (SQLite files
under var/bench/, PostgreSQL databases created and dropped on the server at
--pg-url), filled by the demo generator, and each page is fetched through the
full Django stack as a logged-in superuser. The table shows the median time
per page and the ratio large/small; the goal is a ratio of at most 1.5 (a
page's cost does not grow with the table). The project's own databases are
never touched.

Each (database, size) pair runs in its own worker process, so Django is
configured once per scratch database. The two sizes' workers take turns, one
request each, so that other work on the machine weighs on both alike.
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
GOAL_RATIO = 1.5
SEED = 20_240_601

# (name, query string): the required three first, then the other filters and searches.
PAGES = (
    ("plain", {}),
    ("filter outcome=win", {"outcome": "win"}),
    ("search symbol", {"q": "NVDA"}),
    ("search signal_id", {"q": "<signal_id>"}),
    ("filter open", {"outcome": "open"}),
    ("filter confidence 90+", {"confidence": "90"}),
    ("filter stored 7 days", {"created": "7d"}),
    ("filter crypto", {"asset_type": "crypto"}),
    ("filter + search", {"action": "SELL", "q": "BTC-USD"}),
)
REQUIRED = PAGES[:3]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Signals in the large table (default 1,000,000).")
    parser.add_argument("--small", type=int, default=1_000, help="Signals in the small table (default 1,000).")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--days", type=int, default=90, help="Spread the signals over the last D days.")
    parser.add_argument("--repeat", type=int, default=25, help="Timed requests per page and size (median reported).")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
                        help="A PostgreSQL server (any database on it) where scratch databases may be created.")
    parser.add_argument("--explain", action="store_true", help="Print the plan of every query each page runs.")
    parser.add_argument("--all-pages", action="store_true", help="Time every filter and search, not only the required three.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a DATABASE_URL: run one measurement
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.small >= args.rows:
        parser.error("--small must be smaller than --rows")

    vendors = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    results = {}
    for vendor in vendors:
        results.update(run_vendor(vendor, args))
    print_table(results, vendors, args)
    return 0


def run_vendor(vendor, args):
    """Load both sizes, then time their pages alternately; return {(vendor, count): result}.

    Both workers stay alive and take turns, one request each, so load from
    other work on the machine falls on both sizes alike instead of on
    whichever happened to run later.
    """
    pages = [name for name, _params in (PAGES if args.all_pages else REQUIRED)]
    workers, cleanups = {}, []
    try:
        for count in (args.small, args.rows):
            url, cleanup = _scratch_database(vendor, count, args)
            cleanups.append(cleanup)
            print(f"== {vendor}, {count:,} signals", file=sys.stderr, flush=True)
            workers[count] = _start_worker(url, count, args)
        samples = {(count, page): [] for count in workers for page in pages}
        for _ in range(args.repeat):
            for page in pages:
                for count, (process, _ready) in workers.items():
                    process.stdin.write(page + "\n")
                    process.stdin.flush()
                    samples[count, page].append(float(process.stdout.readline()))
        results = {}
        for count, (process, ready) in workers.items():
            pages_ms = {page: statistics.median(samples[count, page]) for page in pages}
            results[vendor, count] = {**ready, "pages": pages_ms}
        return results
    finally:
        for process, _ready in workers.values():
            process.stdin.close()
            process.wait(timeout=60)
        for cleanup in cleanups:
            cleanup()


def _scratch_database(vendor, count, args):
    """Create an empty scratch database; return its URL and a function that removes it."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    if vendor == "sqlite":
        path = BENCH_DIR / f"admin-{count}.sqlite3"
        _remove_sqlite(path)
        return f"sqlite:///{path}", lambda: _remove_sqlite(path)
    name = f"signalhub_bench_admin_{count}"
    _pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(args.pg_url)._replace(path=f"/{name}"))
    return url, lambda: _pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start_worker(url, count, args):
    """Start a worker on ``url``; return it once its table is loaded, with what it reported."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SIGNALHUB_DATA_DIR": str(BENCH_DIR),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "SIGNALHUB_LOG_LEVEL": "warning",
    }
    command = [sys.executable, __file__, "--worker", url, "--count", str(count), "--days", str(args.days)]
    command += ["--explain"] * args.explain + ["--all-pages"] * args.all_pages
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line:
        process.wait()
        raise SystemExit(f"the worker for {url} failed (exit {process.returncode})")
    return process, json.loads(line)


def _remove_sqlite(path):
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _pg_admin(url, *statements):
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


def print_table(results, vendors, args):
    pages = [name for name, _params in (PAGES if args.all_pages else REQUIRED)]
    print()
    print(f"Signal admin change list, median ms per page over {args.repeat} requests (goal: ratio <= {GOAL_RATIO})")
    header = f"{'database':<10} {'page':<24} {args.small:>12,} {args.rows:>12,} {'ratio':>7}  {'rows shown':>12}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for vendor in vendors:
        small, large = results[vendor, args.small], results[vendor, args.rows]
        for page in pages:
            ratio = large["pages"][page] / small["pages"][page]
            if page in dict(REQUIRED):
                worst = max(worst, ratio)
            mark = "ok" if ratio <= GOAL_RATIO else "OVER"
            rows = f"{small['shown'][page]}/{large['shown'][page]}"
            print(f"{vendor:<10} {page:<24} {small['pages'][page]:>12.1f} {large['pages'][page]:>12.1f} {ratio:>7.2f}  "
                  f"{rows:>12}  {mark}")
        print(f"{vendor:<10} {'(generating the table)':<24} {small['generate_s']:>11.1f}s {large['generate_s']:>11.1f}s")
    print("(rows shown: rows on the page, small/large; a page with fewer rows renders faster)")
    print(f"\nWorst ratio of the required pages (plain, one filter, exact search): {worst:.2f} ({'meets' if worst <= GOAL_RATIO else 'misses'} the goal of {GOAL_RATIO})")


# The worker: one scratch database, one size -----------------------------------------

def worker(args):
    # stdout carries the protocol; everything else (logging, warnings) goes to stderr.
    protocol, sys.stdout = sys.stdout, sys.stderr
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalhub.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    from signals.models import Signal
    from signals.operations.demo import generate_demo_signals

    # Plain HTTP and no collected static manifest here, as in the test suite.
    overrides = override_settings(
        SECURE_SSL_REDIRECT=False,
        STORAGES={**settings.STORAGES, "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}},
    )
    overrides.enable()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    generate_demo_signals(args.count, days=args.days, seed=SEED, progress=True)
    generate_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # What autovacuum does soon after a bulk load: planner statistics, the
            # visibility map, and the reltuples estimate the unfiltered list shows.
            cursor.execute("VACUUM ANALYZE signals_signal")
            # Write the load out now, so a checkpoint does not compete with the timed pages.
            cursor.execute("CHECKPOINT")
        else:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    user = get_user_model().objects.create_superuser("bench", password=secrets.token_urlsafe(16))
    client = Client()
    client.force_login(user)
    middle = Signal.objects.order_by("pk").values_list("signal_id", flat=True)[args.count // 2]
    pages = []
    for name, params in (PAGES if args.all_pages else REQUIRED):
        params = {key: (middle if value == "<signal_id>" else value) for key, value in params.items()}
        pages.append((name, params))
    shown = {}
    for name, params in pages:
        for _ in range(3):  # warm the caches and the connection
            _get(client, params)
        # One cell of this class per listed signal.
        shown[name] = _get(client, params).content.decode().count('class="field-time_display"')
        if args.explain:
            with CaptureQueriesContext(connection) as queries:
                _get(client, params)
            _print_plans(connection, name, args.count, queries)
    print(json.dumps({"vendor": connection.vendor, "count": args.count, "generate_s": generate_s, "shown": shown}),
          file=protocol, flush=True)
    # Then time one request per page name read from stdin, until stdin closes.
    by_name = dict(pages)
    for line in sys.stdin:
        params = by_name[line.strip()]
        started = time.perf_counter()
        _get(client, params)
        print(f"{(time.perf_counter() - started) * 1000:.3f}", file=protocol, flush=True)
    return 0


def _get(client, params):
    response = client.get("/admin/signals/signal/", params)
    if response.status_code != 200:
        raise SystemExit(f"GET {params} answered {response.status_code}")
    return response


def _print_plans(connection, page, count, queries):
    print(f"\n-- plans: {connection.vendor}, {count:,} signals, page '{page}'", file=sys.stderr)
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
    for query in queries.captured_queries:
        sql = query["sql"]
        if "signals_signal" not in sql or not sql.lstrip().upper().startswith("SELECT"):
            continue
        print(f"{sql[:300]}{' ...' if len(sql) > 300 else ''}", file=sys.stderr)
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql)
            for row in cursor.fetchall():
                print("    " + " | ".join(str(value) for value in row), file=sys.stderr)
    print(file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
