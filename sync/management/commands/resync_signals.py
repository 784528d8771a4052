"""Queue signals for delivery again (for example after Alpine lost data); Alpine de-duplicates by hash."""

from django.core.management.base import BaseCommand, CommandError

from signalhub.dates import parse_moment
from sync.models import Delivery


def _moment(value, name):
    try:
        return parse_moment(value)
    except ValueError as exc:
        raise CommandError(f"--{name} {exc}.") from None


class Command(BaseCommand):
    help = "Queue delivered (and dead or cancelled) signals stored in a period for delivery again."

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="Signals stored at or after this date/time (UTC if no offset).")
        parser.add_argument("--until", help="... and before this date/time.")
        parser.add_argument("--symbol", help="Only this symbol.")
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args, since, until, symbol, dry_run, **options):
        since = _moment(since, "since")
        rows = Delivery.objects.filter(signal__created_at__gte=since).exclude(state__in=Delivery.UNDELIVERED)
        if until:
            until = _moment(until, "until")
            if until <= since:
                raise CommandError("--until must be after --since.")
            rows = rows.filter(signal__created_at__lt=until)
        if symbol:
            rows = rows.filter(signal__symbol=symbol.strip().upper())
        if dry_run:
            self.stdout.write(f"would queue {rows.count()} signals again (dry run)")
            return
        count = Delivery.objects.filter(pk__in=rows.values("pk")).requeue()
        self.stdout.write(f"queued {count} signals for delivery again; the next pass sends them")
