"""Move archived signals (by time, symbol or ids), with their deliveries, back to the main database."""

from django.core.management.base import BaseCommand, CommandError

from signals.management.commands.archive_signals import EXIT_USAGE, run_move
from signals.operations import archive


class Command(BaseCommand):
    help = "Move archived signals matching the selection back to the main database."
    # The archiving lock: a restore and an archive run move rows in opposite
    # directions and would wait on each other's write locks (SQLite) if they overlapped.
    lock_name = "archive_signals"

    def add_arguments(self, parser):
        parser.add_argument("--since", help="Signals created at or after this date/ISO datetime (UTC).")
        parser.add_argument("--until", help="Signals created before this date/ISO datetime (UTC).")
        parser.add_argument("--symbol", action="append", default=[], help="Only this symbol (repeatable).")
        parser.add_argument("--ids", nargs="+", default=[], metavar="SIGNAL_ID", help="Only these signal ids.")
        parser.add_argument("--all", action="store_true", help="Restore every archived signal.")
        parser.add_argument("--dry-run", action="store_true", help="Print counts and sizes only; change nothing.")
        parser.add_argument("--batch-size", type=int, default=archive.DEFAULT_BATCH_SIZE)
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, since, until, symbol, ids, all, dry_run, batch_size, json, **options):
        if not (since or until or symbol or ids or all):
            raise CommandError("choose what to restore: --since/--until, --symbol, --ids, or --all",
                               returncode=EXIT_USAGE)
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1", returncode=EXIT_USAGE)
        try:
            since = archive.archive_cutoff(before=since) if since else None
            until = archive.archive_cutoff(before=until) if until else None
        except ValueError as exc:
            raise CommandError(f"--since/--until: {exc}", returncode=EXIT_USAGE) from None

        def move():
            return archive.restore_signals(since=since, until=until, symbols=symbol, signal_ids=ids, dry_run=dry_run,
                                           batch_size=batch_size, progress=None if json else self.stderr._out)

        run_move(self, move, as_json=json)
