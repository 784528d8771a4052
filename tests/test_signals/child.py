"""A generator process for the write-path tests (run as a subprocess, not collected by pytest).

Prints ``ACK <signal_id>`` for every signal once ``log_signal`` has returned,
then does what ``--then`` says:

- ``exit``: return normally (atexit flushes);
- ``wait``: print READY and sleep until a signal arrives (SIGTERM test);
- ``forever``: keep logging until killed;
- ``flush``: print FLUSH, flush_pending(), print FLUSHED <count>;
- ``die``: SIGKILL itself (leaves a dead owner's segment);
- ``retry``: flush_pending(1), print STORED <count>, wait for a line on stdin, flush_pending(30), print STORED <count>.
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalhub.settings")

import django  # noqa: E402

django.setup()

from signals.ingest import flush_pending, log_signal  # noqa: E402


def payload(prefix, n):
    return {"signal_id": f"{prefix}-{n:07d}", "symbol": "AAPL", "action": "BUY", "entry_price": 100.0 + n % 50,
            "target_price": 160.0, "stop_price": 90.0, "confidence": 70.0, "strategy": "crash-test",
            "timestamp": "2025-11-18T14:30:00+00:00"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", default="CHILD")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--then", default="exit", choices=["exit", "wait", "forever", "flush", "die", "retry"])
    args = parser.parse_args()
    out = sys.stdout
    n = 0
    print("STARTED", flush=True)
    while n < args.count or args.then == "forever":
        signal_id = log_signal(payload(args.prefix, n))
        out.write(f"ACK {signal_id}\n")
        out.flush()
        n += 1
    if args.then == "wait":
        print("READY", flush=True)
        while True:
            time.sleep(1)
    elif args.then == "flush":
        print("FLUSH", flush=True)
        print(f"FLUSHED {flush_pending()}", flush=True)
    elif args.then == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    elif args.then == "retry":
        print(f"STORED {flush_pending(timeout=1)}", flush=True)
        sys.stdin.readline()
        print(f"STORED {flush_pending(timeout=30)}", flush=True)


if __name__ == "__main__":
    main()
