"""Sync's part of ``monitor_signals`` and ``verify_signals``: delivery to Alpine, and Alpine's health endpoint.

signalhub.reports shows these beside the ledger's sections and checks, so the
ledger never imports sync to report on it.
"""

from django.conf import settings

from signalhub.secrets import mask_url
from signals.operations.monitoring import WARNING, Problem
from signals.operations.verification import FAIL, PASS, WARN, Check
from sync import checkup
from sync.config import alpine_config
from sync.models import Delivery
from sync.status import sync_summary


def sync_section(now):
    """Delivery to Alpine, from sync.status.sync_summary().

    While sync is switched off by configuration the section is information
    only: rows wait as pending by design, so neither their age nor the rest is
    a problem. Otherwise each is a WARNING: an undelivered signal older than
    SIGNALHUB_MONITOR_UNDELIVERED_MAX_AGE, dead deliveries (they need a retry
    by hand), a paused destination. The signals themselves are safe in the ledger.
    """
    summary = sync_summary(now)
    age = summary["oldest_undelivered_age_seconds"]
    active = summary["enabled"] and summary["configured"]
    figures = {
        "state": "on" if active else summary["off_reason"],
        "counts": summary["counts"],
        "counts_how": summary["counts_how"],
        "oldest_undelivered_age_seconds": None if age is None else round(age, 1),
        "dead": summary["dead"],
        "paused": summary["paused"],
        "paused_until": summary["paused_until"] and summary["paused_until"].isoformat(),
        "pause_reason": summary["pause_reason"],
        "last_success_at": summary["last_success_at"] and summary["last_success_at"].isoformat(),
    }
    if not active:
        return figures, []
    problems = []
    limit = settings.SIGNALHUB_MONITOR_UNDELIVERED_MAX_AGE
    if age is not None and age > limit:
        undelivered = sum(summary["counts"][state] for state in ("pending", "sending", "retrying"))
        problems.append(Problem(WARNING, "undelivered_old", f"{undelivered} signals not yet delivered to Alpine, "
                                f"the oldest queued {age / 3600:.1f} h ago (over {limit / 3600:g} h)"))
    if summary["dead"]:
        problems.append(Problem(WARNING, "dead_deliveries", f"{summary['dead']} dead deliveries (Alpine will not get "
                                "them without a retry: the admin's 'Retry dead deliveries since...' or manage.py resync_signals)"))
    if summary["paused"]:
        problems.append(Problem(WARNING, "destination_paused", f"delivery to Alpine is paused until "
                                f"{summary['paused_until']:%Y-%m-%d %H:%M:%S} UTC: {summary['pause_reason']}"))
    return figures, problems


def render_sync_section(sync):
    """Return the text lines of the sync section's figures."""
    age = sync["oldest_undelivered_age_seconds"]
    return ["", "Sync", f"  delivery to Alpine: {sync['state']}"
            + (" (information, not a problem: signals wait as pending)" if sync["state"] != "on" else ""),
            "  deliveries: " + ", ".join(f"{state} {n}" for state, n in sync["counts"].items())
            + f" (delivered: {sync['counts_how']['delivered']}; the others exact)",
            "  oldest undelivered: " + ("none" if age is None else f"{age:.0f} s"),
            f"  dead: {sync['dead']}",
            ("  paused until " + f"{sync['paused_until']}: {sync['pause_reason']}") if sync["paused"] else "  paused: no",
            f"  last success: {sync['last_success_at'] or 'never'}"]


def sync_checks(now):
    """Alpine configured and its health endpoint answering; WARN with the reason when sync is off."""
    name = "Alpine configured and its health endpoint answering"
    try:
        config = alpine_config()
    except Exception as exc:
        return [Check(name, FAIL, f"the Alpine configuration cannot be read: {exc}")]
    if not config.active:
        return [Check(name, WARN, f"{config.off_reason}: signals wait as pending (not checked)")]
    health = checkup.check_health(config)
    if not health.passed:
        return [Check(name, FAIL, health.found)]
    key = "" if config.api_key else "; ARGO_API_KEY is not set (only an Alpine without a key accepts deliveries)"
    shown = mask_url(config.health_url())  # a password in ALPINE_API_URL is never printed
    return [Check(name, WARN if key else PASS, f"{shown}: {health.found}{key}")]


def delivery_queued(signal_id):
    """Return whether the signal ``signal_id`` has its delivery row (the write path probe looks, then rolls back)."""
    return Delivery.objects.filter(signal__signal_id=signal_id).exists()
