"""monitor_signals at 1,000,000 signals against 10,000, with the same recent flow.

    .venv/bin/python bench/monitor.py                   # 1,000,000 vs 10,000
    .venv/bin/python bench/monitor.py --large 200000    # quicker

Both ledgers get one signal every 63 s up to now, so the last hour and the
last day hold the same rows; the large one is a longer history. Each report
is gathered in a subprocess (Django already set up): one warm-up, then the
median of several runs. Goal: the large ledger costs at most 2x the small.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ops_data import ROOT, bench_env, build_ledger  # noqa: E402

MEASURE = """
import json, statistics, time
from signalhub import reports
reports.gather_report()
times = []
for _ in range({runs}):
    started = time.perf_counter()
    report = reports.gather_report()
    times.append(time.perf_counter() - started)
print(json.dumps({{"median": statistics.median(times), "status": report.status,
                  "total": report.sections["signals"]["total"], "how": report.sections["signals"]["total_count"],
                  "problems": [p.code for p in report.problems]}}))
"""


def measure(directory, runs):
    import json

    output = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", MEASURE.format(runs=runs)],
                            cwd=ROOT, env=bench_env(directory), check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="signalhub-bench-monitor-"))
    try:
        figures = {}
        for name, total in (("small", args.small), ("large", args.large)):
            print(f"Building a ledger of {total:,} signals")
            build_ledger(workdir / name, total)
            figures[name] = measure(workdir / name, args.runs)
            result = figures[name]
            print(f"  monitor report: median {result['median'] * 1000:.1f} ms over {args.runs} runs; "
                  f"status {result['status']} {result['problems']}; total {result['total']:,} ({result['how']})")
        ratio = figures["large"]["median"] / figures["small"]["median"]
        print()
        print(f"monitor at {args.large:,} vs {args.small:,} signals: {ratio:.2f}x "
              f"(goal <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
