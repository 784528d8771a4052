"""Import signals from a JSON-lines, CSV or legacy Argo SQLite file."""

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from signals.writepath.import_readers import MAX_RECORD_BYTES, ImportFailed, printable
from signals.writepath.importers import FORMATS, import_signals


class Command(BaseCommand):
    help = ("Import signals through the same validation and write path as log_signal. Re-running the same "
            "file adds nothing. Each refused record is printed to stderr with its file, line and reason. "
            f"A line longer than {MAX_RECORD_BYTES} bytes is refused and skipped. Exit codes: 1 the import "
            "cannot run, 2 it stopped part-way on a damaged legacy file (what came before is stored), "
            "3 the database failed.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--dry-run", action="store_true", help="Validate and classify, store nothing.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the summary as JSON.")

    def handle(self, *args, path, fmt, dry_run=False, as_json=False, **options):
        shown = printable(path, 1000)

        def refused(where, problems):
            reasons = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in problems)
            self.stderr.write(f"{shown}:{where}: refused: {reasons}")

        try:
            report = import_signals(path, fmt, dry_run=dry_run, on_refused=refused)
        except ImportFailed as exc:
            done = f"; before it stopped: {exc.report.summary()}" if exc.report else ""
            raise CommandError(printable(f"{exc}{done}", 4000), returncode=exc.returncode) from None
        except DatabaseError as exc:
            # What was written before stays written; running the import again resumes.
            raise CommandError(f"the database failed during the import ({exc}); run it again to resume",
                               returncode=3) from None
        self.stdout.write(json.dumps(report.as_dict()) if as_json else printable(report.summary(), 100_000))
