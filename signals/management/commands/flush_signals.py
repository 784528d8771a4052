"""Store whatever the journals hold, once (the same pass as the periodic flush)."""

import json

from django.core.management.base import BaseCommand, CommandError

from signals.tasks import flush_journals_once


class Command(BaseCommand):
    help = "Store the signals journals hold: dead processes' segments and this process's pending ones."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the counts as JSON.")

    def handle(self, *args, as_json=False, **options):
        counts = flush_journals_once()
        if as_json:
            self.stdout.write(json.dumps(counts))
        else:
            self.stdout.write(
                "stored {stored}, duplicates {duplicates}, conflicts {conflicts}, quarantined {quarantined}; "
                "segments replayed {segments_replayed}, live (skipped) {segments_live}, failed {segments_failed}"
                .format(**counts))
            for error in counts["errors"]:
                self.stderr.write(f"  {error}")
        if counts["segments_failed"]:
            raise CommandError("some journal segments could not be written; they stay for the next pass", returncode=2)

