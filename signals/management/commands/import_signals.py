"""Import signals from a JSON-lines, CSV or legacy Argo SQLite file."""

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from signals.importers import FORMATS, ImportFailed, import_signals


class Command(BaseCommand):
    help = ("Import signals through the same validation and write path as log_signal. Re-running the same "
            "file adds nothing. Exits non-zero only when the import cannot run.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--dry-run", action="store_true", help="Validate and classify, store nothing.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the summary as JSON.")

    def handle(self, *args, path, fmt, dry_run=False, as_json=False, **options):
        try:
            report = import_signals(path, fmt, dry_run=dry_run)
        except ImportFailed as exc:
            raise CommandError(str(exc), returncode=1) from None
        except DatabaseError as exc:
            # What was written before stays written; running the import again resumes.
            raise CommandError(f"the database failed during the import ({exc}); run it again to resume",
                               returncode=3) from None
        self.stdout.write(json.dumps(report.as_dict()) if as_json else report.summary())
