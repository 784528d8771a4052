"""Report on storage, signal flow and indexes; exit 0 OK, 1 WARNING, 2 CRITICAL (Nagios)."""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from signalhub import reports


class Command(BaseCommand):
    help = "Report on storage, signal flow and indexes; exit code 0 OK, 1 WARNING, 2 CRITICAL."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument("--watch", type=float, metavar="SECONDS", help="Repeat every SECONDS until Ctrl-C.")
        parser.add_argument("--times", type=int, default=0, help="With --watch: stop after this many reports.")

    def handle(self, *args, json, watch, times, **options):
        if watch is not None and watch <= 0:
            raise CommandError("--watch must be a positive number of seconds", returncode=3)
        shown, report = 0, None
        try:
            while True:
                report = reports.gather_report()
                self.stdout.write(_json_text(report) if json else reports.render_text(report))
                shown += 1
                if watch is None or (times and shown >= times):
                    break
                self.stdout.write("")
                time.sleep(watch)
        except KeyboardInterrupt:
            if report is None:
                raise CommandError("interrupted before the first report", returncode=3) from None
        if report.exit_code:
            # The problems are in the output above; the exit code is for scripts and Nagios.
            raise CommandError(reports.status_line(report), returncode=report.exit_code)


def _json_text(report):
    return json.dumps(report.as_dict(), default=str, indent=2)
