"""What the monitor_signals tests share: a frozen clock at NOW and a way to run the command."""

from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from tests.support import utc

NOW = utc(2026, 11, 20, 12, 0)


@pytest.fixture(autouse=True)
def frozen_clock():
    """Autouse in every module that imports it: the clock stands at NOW."""
    with time_machine.travel(NOW, tick=False):
        yield


def monitor(*args):
    """Run monitor_signals; return (exit code, stdout)."""
    out = StringIO()
    try:
        call_command("monitor_signals", *args, stdout=out, stderr=StringIO())
    except CommandError as error:
        return error.returncode, out.getvalue()
    return 0, out.getvalue()
