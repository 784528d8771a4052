"""``monitor_signals`` and ``verify_signals``: the ledger's sections and checks, with sync's beside them.

The project package composes the two apps' reports, so that neither app
imports the other to report on it (dependencies run sync -> signals).
"""

from signals.operations import monitoring, verification
from sync import health

MONITOR_SECTIONS = [
    ("storage", monitoring.storage_section),
    ("signals", monitoring.signals_section),
    ("write_path", monitoring.write_path_section),
    ("sync", health.sync_section),
    ("indexes", monitoring.indexes_section),
]
# Rows other apps keep for a stored signal, which the write path probe must find and then not leave behind.
PROBE_RELATED = {"delivery": health.delivery_queued}

PASS, WARN, FAIL = verification.PASS, verification.WARN, verification.FAIL
status_line = monitoring.status_line


def gather_report(now=None):
    """Return the monitor's Report: the ledger's sections and the sync section."""
    return monitoring.gather_report(now, sections=MONITOR_SECTIONS)


def render_text(report):
    """Return the monitor's report as text for a terminal."""
    return monitoring.render_text(report, others={"sync": health.render_sync_section})


def run_checks(*, deep=False, progress=None, now=None):
    """Return verify_signals' numbered Checks: the ledger's, with Alpine's after the schedules'."""
    return verification.run_checks(deep=deep, progress=progress, now=now,
                                   other_checks=[health.sync_checks], related=PROBE_RELATED)
