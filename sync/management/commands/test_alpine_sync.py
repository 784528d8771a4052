"""Check the connection to Alpine step by step; exit 0 only when every step passed."""

from django.core.management.base import BaseCommand, CommandError

from sync.checkup import run_checks


class Command(BaseCommand):
    help = ("Show the Alpine configuration (key masked), check health and that the key is accepted "
            "without storing anything; --send-test-signal also stores one marked test signal.")

    def add_arguments(self, parser):
        parser.add_argument("--send-test-signal", action="store_true",
                            help="Also send one clearly marked test signal (stored in Alpine).")

    def handle(self, *args, send_test_signal, **options):
        config, steps = run_checks(send_test=send_test_signal)
        self.stdout.write("Configuration:")
        for name, value, source in config.describe():
            self.stdout.write(f"  {name:<20} {value}  [{source}]")
        if config.config_file:
            self.stdout.write(f"  (config file: {config.config_file})")
        for step in steps:
            self.stdout.write(f"{'PASS' if step.passed else 'FAIL'}  {step.name}: {step.found}")
        if not send_test_signal and all(step.passed for step in steps):
            self.stdout.write("SKIP  test signal: pass --send-test-signal to store one marked test signal in Alpine")
        failed = [step.name for step in steps if not step.passed]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}", returncode=1)
        self.stdout.write("all checks passed")
