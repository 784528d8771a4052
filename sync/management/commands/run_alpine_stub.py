"""Run a local Alpine (sync.testing.stub) in the foreground, for development and demos.

The key is read from ALPINE_STUB_KEY: an argument would be visible to every
local user in ``ps``, the environment of a process only to its owner.
"""

import os
import time

from django.core.management.base import BaseCommand

from sync.testing.stub import SOCKET_TIMEOUT, AlpineStub

KEY_VARIABLE = "ALPINE_STUB_KEY"


class Command(BaseCommand):
    help = "Run a local Alpine following the contract, with optional fault injection."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--key", default=None,
                            help=f"Require this X-API-Key. Prefer {KEY_VARIABLE} in the environment: an argument "
                                 "shows in ps. Neither: accept every request.")
        parser.add_argument("--error-rate", type=float, default=0.0, help="Share answered 500 without storing.")
        parser.add_argument("--store-then-fail-rate", type=float, default=0.0, help="Share stored, then answered 500.")
        parser.add_argument("--slow-rate", type=float, default=0.0, help="Share answered after --slow-seconds.")
        parser.add_argument("--slow-seconds", type=float, default=15.0)
        parser.add_argument("--throttle-rate", type=float, default=0.0, help="Share answered 429 with Retry-After.")
        parser.add_argument("--unavailable-rate", type=float, default=0.0, help="Share answered 503 with Retry-After.")
        parser.add_argument("--retry-after", default="5", help="Retry-After value (seconds or an HTTP date).")
        parser.add_argument("--outage-seconds", type=float, default=0.0, help="Answer 503 to everything for this long at start.")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--socket-timeout", type=float, default=SOCKET_TIMEOUT,
                            help="Drop a connection silent for this many seconds.")

    def handle(self, *args, **o):
        key = o["key"] or os.environ.get(KEY_VARIABLE) or None
        stub = AlpineStub(host=o["host"], port=o["port"], key=key, seed=o["seed"], socket_timeout=o["socket_timeout"])
        faults = stub.faults
        faults.error_rate, faults.store_then_fail_rate = o["error_rate"], o["store_then_fail_rate"]
        faults.slow_rate, faults.slow_seconds = o["slow_rate"], o["slow_seconds"]
        faults.throttle_rate, faults.unavailable_rate = o["throttle_rate"], o["unavailable_rate"]
        faults.retry_after = o["retry_after"]
        if o["outage_seconds"]:
            faults.outage_until = time.time() + o["outage_seconds"]
        self.stdout.write(f"Alpine stub on {stub.url} ({'key required' if key else 'no key: accepts every request'}); "
                          f"stored rows at {stub.url}/_stub/signals; Ctrl-C stops it.")
        try:
            stub.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            stub.server.server_close()
            self.stdout.write(f"stopped; {len(stub.state.stored)} signals stored")
