"""Move signals older than a cut-off, with their deliveries, to the archive database."""

import json

from django.core.management.base import BaseCommand, CommandError

from signalhub.locks import LockHeld, command_lock
from signals.operations import archive

# Exit codes (docs/operations.md): 0 done, 1 a batch failed or conflicts remain,
# 2 bad arguments, 3 another run holds the lock.
EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 1, 2, 3


def run_move(command, move, *, as_json):
    """Run ``move()`` under the command's lock and print its result; shared with restore_signals."""
    try:
        with command_lock(command.lock_name):
            result = move()
    except LockHeld as exc:
        raise CommandError(str(exc), returncode=EXIT_LOCKED) from None
    except archive.ArchiveError as exc:
        raise CommandError(f"stopped; nothing of the failed batch was deleted: {exc}",
                           returncode=EXIT_FAILED) from None
    if as_json:
        command.stdout.write(json.dumps(result.as_dict(), default=str, indent=2))
    else:
        command.stdout.write(result.summary_line())
    if result.conflicts:
        raise CommandError(f"{len(result.conflicts)} signals were left in {result.source}: "
                           f"their signal_id is already in {result.target} under another row", returncode=EXIT_FAILED)
    return result


class Command(BaseCommand):
    help = "Move signals older than the cut-off (default 12 calendar months, UTC) to the archive database."
    lock_name = "archive_signals"

    def add_arguments(self, parser):
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--months", type=int, default=None,
                          help="Archive signals created more than N calendar months ago (UTC; default 12).")
        when.add_argument("--before", help="Archive signals created before this date (YYYY-MM-DD, UTC) or ISO datetime.")
        parser.add_argument("--dry-run", action="store_true", help="Print counts and sizes only; change nothing.")
        parser.add_argument("--batch-size", type=int, default=archive.DEFAULT_BATCH_SIZE)
        parser.add_argument("--include-undelivered", action="store_true",
                            help="Archive signals whose delivery to Alpine is not finished too.")
        parser.add_argument("--no-vacuum", action="store_true", help="Do not reclaim the space afterwards.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, months, before, dry_run, batch_size, include_undelivered, no_vacuum, json, **options):
        if months is not None and months < 1:
            raise CommandError("--months must be at least 1", returncode=EXIT_USAGE)
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1", returncode=EXIT_USAGE)
        try:
            cutoff = archive.archive_cutoff(months=months, before=before)
        except ValueError as exc:
            raise CommandError(f"--before: {exc}", returncode=EXIT_USAGE) from None
        if not json:
            self.stdout.write(f"Cut-off: signals created before {cutoff.isoformat()}"
                              f"{' (dry run: nothing will change)' if dry_run else ''}")

        def move():
            return archive.archive_signals(
                cutoff=cutoff, include_undelivered=include_undelivered, dry_run=dry_run, batch_size=batch_size,
                vacuum=not no_vacuum, progress=None if json else self.stderr._out)

        run_move(self, move, as_json=json)
