from django.core.management.base import BaseCommand, CommandError

from signals.operations.demo import generate_demo_signals


class Command(BaseCommand):
    help = "Store realistic demo signals (stocks and crypto on random-walk prices), older ones closed."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, required=True, help="How many signals to store.")
        parser.add_argument("--days", type=int, default=30, help="Spread them over the last D days (default 30).")
        parser.add_argument("--seed", type=int, default=None, help="Seed for reproducible prices and outcomes.")
        parser.add_argument("--no-progress", action="store_true", help="Do not show the progress bar.")

    def handle(self, *args, count, days, seed, no_progress, **options):
        if count < 0:
            raise CommandError("--count must be at least 0.", returncode=2)
        if days <= 0:
            raise CommandError("--days must be greater than 0.", returncode=2)
        stored = generate_demo_signals(count, days=days, seed=seed, progress=not no_progress)
        self.stdout.write(self.style.SUCCESS(f"Stored {stored} demo signals over the last {days} days."))
