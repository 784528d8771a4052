"""Numbered health checks, each PASS, WARN or FAIL; exit 0 only when none failed."""

import json

from django.core.management.base import BaseCommand, CommandError

from signalhub import reports


class Command(BaseCommand):
    help = "Run SignalHub's health checks (--deep: recompute every signal's hash); exit 1 when one fails."

    def add_arguments(self, parser):
        parser.add_argument("--deep", action="store_true", help="Recompute every stored signal's verification hash.")
        parser.add_argument("--json", action="store_true", help="Print the checks as JSON.")

    def handle(self, *args, deep, json, **options):
        checks = reports.run_checks(deep=deep, progress=None if json else self.stderr._out)
        failed = [check for check in checks if check.status == reports.FAIL]
        if json:
            self.stdout.write(_dumps({"ok": not failed, "checks": [check.as_dict() for check in checks]}))
        else:
            for check in checks:
                style = {reports.PASS: self.style.SUCCESS, reports.WARN: self.style.WARNING}.get(
                    check.status, self.style.ERROR)
                self.stdout.write(f"{check.number:2}. {style(check.status)}  {check.name}: {check.reason}")
        if failed:
            raise CommandError(f"{len(failed)} of {len(checks)} checks failed: "
                               + ", ".join(f"{check.number}. {check.name}" for check in failed), returncode=1)


def _dumps(value):
    return json.dumps(value, default=str, indent=2)
