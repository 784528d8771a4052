"""Deliver stored signals to Alpine: one pass, or --drain until nothing is left to try."""

import json
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from sync import delivery
from sync.status import sync_summary


class Command(BaseCommand):
    help = "Deliver due signals to Alpine (one pass; --drain repeats, waiting out backoff)."

    def add_arguments(self, parser):
        parser.add_argument("--drain", action="store_true",
                            help="Repeat passes, waiting out backoff and pauses, until nothing is pending or retrying.")
        parser.add_argument("--max-seconds", type=float, default=None, help="Stop after this long.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, drain, max_seconds, json: bool, **options):
        stop = threading.Event()
        # SIGTERM ends a drain after its current pass; the rows in flight are recorded.
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            if drain:
                result = delivery.drain(max_seconds=max_seconds, stop=stop)
            else:
                result = delivery.PassResult()
                delivery.handle_one_batch(result=result)
        finally:
            signal.signal(signal.SIGTERM, previous)
        summary = sync_summary()
        report = {"claimed": result.claimed, "delivered": result.delivered, "retrying": result.retrying,
                  "dead": result.dead, "released": result.released, "parked": result.parked,
                  "errors": result.errors, "note": result.skipped_reason, "counts": summary["counts"]}
        if json:
            self.stdout.write(_json_dumps(report))
        else:
            self.stdout.write(
                f"claimed {result.claimed}: delivered {result.delivered}, retrying {result.retrying}, "
                f"dead {result.dead}, handed back {result.released}, parked {result.parked}")
            if result.errors:
                self.stdout.write("errors: " + ", ".join(f"{name} {count}" for name, count in sorted(result.errors.items())))
            if result.skipped_reason:
                self.stdout.write(result.skipped_reason)
            self.stdout.write("now: " + ", ".join(f"{state} {count}" for state, count in summary["counts"].items()))
        if summary["paused"]:
            raise CommandError(f"delivery is paused until {summary['paused_until']:%Y-%m-%d %H:%M:%S} UTC: "
                               f"{summary['pause_reason']}", returncode=2)
        if drain and not result.skipped_reason.startswith("sync off") and (
                summary["counts"]["pending"] or summary["counts"]["retrying"]):
            raise CommandError("stopped with deliveries still pending or retrying (see the counts above)", returncode=3)


def _json_dumps(data):
    return json.dumps(data, indent=2, default=str)
