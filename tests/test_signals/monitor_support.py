"""What the monitor_signals tests share: the moment NOW (the frozen_clock fixture) and a way to run the command."""

from io import StringIO

from django.core.management import CommandError, call_command

from tests.support import utc

NOW = utc(2026, 11, 20, 12, 0)


def monitor(*args):
    """Run monitor_signals; return (exit code, stdout)."""
    out = StringIO()
    try:
        call_command("monitor_signals", *args, stdout=out, stderr=StringIO())
    except CommandError as error:
        return error.returncode, out.getvalue()
    return 0, out.getvalue()
