"""The delivery worker: claim a batch under a lease, send it, record what Alpine said.

One pass (``handle_one_batch``) is three short steps with no network call
inside a transaction:

1. claim: up to SIGNALHUB_SYNC_BATCH_SIZE due rows become ``sending`` under a
   lease owned by a fresh token; their next_attempt_at becomes the lease's end
   and their attempt is counted, so a worker killed now leaves rows another
   picks up once the lease has passed;
2. send: the bodies go out through a bounded thread pool of keep-alive sessions;
3. record: one transaction writes each row's outcome (only if the lease is
   still ours), its attempt log row, and the destination's health.
"""

import logging
import os
import random
import socket
import threading
import time
import uuid
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from sync import client
from sync.config import alpine_config
from sync.models import Delivery, DeliveryAttempt, Destination

logger = logging.getLogger(__name__)

# Rows not yet sent when the lease is this close to its end are handed back.
LEASE_MARGIN_SECONDS = 1.0
# Short pauses of a drain while everything left waits for its backoff.
DRAIN_NAP_MAX = 1.0


@dataclass
class PassResult:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    released: int = 0
    parked: int = 0
    skipped_reason: str = ""
    errors: dict = field(default_factory=dict)

    def add(self, other):
        for name in ("claimed", "delivered", "retrying", "dead", "released", "parked"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, value in other.errors.items():
            self.errors[key] = self.errors.get(key, 0) + value


def backoff_seconds(attempts, retry_after=None, rng=random):
    """Return the delay before the next try: full jitter over an exponential ceiling, at least Retry-After."""
    ceiling = min(settings.SIGNALHUB_SYNC_BACKOFF_CAP, settings.SIGNALHUB_SYNC_BACKOFF_BASE * 2 ** max(0, attempts - 1))
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        # Alpine asked for this much (already at most client.RETRY_AFTER_MAX).
        delay = max(delay, min(retry_after, client.RETRY_AFTER_MAX))
    return delay


def new_owner():
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


# Claiming ----------------------------------------------------------------------

def claim_batch(*, limit, now=None, ids=None):
    """Claim up to ``limit`` due deliveries for a new owner token; return (owner, rows with their signals)."""
    now = now or timezone.now()
    owner = new_owner()
    lease_until = now + timedelta(seconds=settings.SIGNALHUB_SYNC_LEASE_SECONDS)
    candidates = Delivery.objects.all() if ids is None else Delivery.objects.filter(pk__in=ids)
    pks = candidates.claim(owner, lease_until, limit=limit, now=now)
    if not pks:
        return owner, []
    rows = list(Delivery.objects.filter(pk__in=pks, lease_owner=owner).select_related("signal"))
    return owner, rows


# Sending -----------------------------------------------------------------------

def _send_all(rows, config, sender, *, deadline, stop):
    """Send each row's body; return {pk: Outcome or None (not sent)} in completion order."""
    def send(row, payload):
        if stop.is_set() or time.monotonic() > deadline:
            return row.pk, None
        return row.pk, client.post_signal(sender.session(), config, payload)

    results = {}
    futures = []
    for row in rows:
        try:
            payload = client.build_payload(row.signal)
        except Exception as exc:
            logger.exception("cannot build the body of delivery %s", row.pk)
            results[row.pk] = client.Outcome("park", client.INTERNAL, 0, f"SignalHub could not build the body: {exc!r}")
            continue
        futures.append(sender.executor.submit(send, row, payload))
    for future in as_completed(futures):
        pk, outcome = future.result()
        results[pk] = outcome
        if outcome is not None and outcome.verdict == client.PAUSE:
            # The key or URL is wrong: do not send the rest of the batch.
            stop.set()
    return results


# Recording ---------------------------------------------------------------------

def _attempt(row_pk, outcome, trigger):
    return DeliveryAttempt(
        delivery_id=row_pk, trigger=trigger, started_at=outcome.started_at,
        finished_at=outcome.finished_at or outcome.started_at, duration_ms=outcome.duration_ms,
        status_code=outcome.status_code, error_class=outcome.error_class,
        error=outcome.reason if outcome.verdict != client.DELIVERED else "",
        response_body=outcome.body[:client.BODY_KEEP_BYTES])


def _apply(row, owner, outcome, now, restore):
    """Move a claimed row on after ``outcome``; return (result bucket, whether the lease was still ours)."""
    if outcome.verdict == client.DELIVERED:
        return "delivered", row.mark_delivered(owner, outcome, now)
    if outcome.verdict == client.DEAD:
        return "dead", row.mark_dead(owner, outcome, now)
    if restore is not None:
        # A failed manual retry leaves the row's schedule and count as they were.
        return "released", row.keep_schedule(owner, outcome, now, restore)
    if outcome.verdict == "park":
        until = now + timedelta(seconds=settings.SIGNALHUB_SYNC_PARK_SECONDS)
        return "parked", row.park(owner, until, outcome=outcome, now=now)
    first = row.first_attempt_at or outcome.started_at
    too_old = (now - first).total_seconds() >= settings.SIGNALHUB_SYNC_MAX_AGE
    if row.attempt_count >= settings.SIGNALHUB_SYNC_MAX_ATTEMPTS or too_old:
        why = (f"gave up after {row.attempt_count} attempts" if not too_old
               else f"gave up {settings.SIGNALHUB_SYNC_MAX_AGE:g} s after the first attempt")
        return "dead", row.mark_dead(owner, outcome, now, why)
    delay = backoff_seconds(row.attempt_count, outcome.retry_after)
    return "retrying", row.schedule_retry(owner, outcome, now, now + timedelta(seconds=delay))


def _record(rows, owner, results, config, trigger, manual_state=None):
    now = timezone.now()
    result = PassResult(claimed=len(rows))
    attempts = []
    failures_since_success, any_success, pause = 0, False, None
    with transaction.atomic():
        for row in rows:
            outcome = results.get(row.pk)
            restore = manual_state[row.pk] if manual_state is not None else None
            if outcome is None or outcome.verdict == client.PAUSE:
                if outcome is not None:
                    pause = outcome
                    attempts.append(_attempt(row.pk, outcome, trigger))
                row.release(owner, restore=restore, paused_by=outcome)
                result.released += 1
                continue
            bucket, ours = _apply(row, owner, outcome, now, restore)
            if not ours:
                # Another worker took the row after our lease ran out; its answer counts.
                logger.warning("delivery %s: lease lost before recording (%s)", row.pk, outcome.verdict)
            setattr(result, bucket, getattr(result, bucket) + 1)
            if outcome.verdict != "park":
                attempts.append(_attempt(row.pk, outcome, trigger))
            if outcome.verdict == client.DELIVERED:
                any_success, failures_since_success = True, 0
            elif outcome.verdict == client.RETRY:
                failures_since_success += 1
            if outcome.error_class:
                result.errors[outcome.error_class] = result.errors.get(outcome.error_class, 0) + 1
        DeliveryAttempt.objects.bulk_create(attempts)
        _record_destination(results, config, any_success, failures_since_success, pause, now)
    return result


def _record_destination(results, config, any_success, failures, pause, now):
    destination = Destination.objects.alpine()
    outcomes = [outcome for outcome in results.values() if outcome is not None and outcome.verdict != "park"]
    if not outcomes:
        return
    failed = [outcome for outcome in outcomes if outcome.verdict != client.DELIVERED]
    destination.record_pass(
        last_status_code=outcomes[-1].status_code, any_success=any_success, failures=failures,
        last_error=failed[-1].reason if failed else None,
        last_error_at=(failed[-1].finished_at or now) if failed else None,
        pause_reason=pause.reason if pause is not None else "", key=config.api_key, now=now)


# Passes ------------------------------------------------------------------------

def destination_pause(config, now=None):
    """Return the Destination if delivery is paused now, lifting an auth pause whose key was replaced."""
    destination = Destination.objects.alpine()
    if not destination.is_paused(now) or destination.lift_pause_for_new_key(config.api_key):
        return None
    return destination


def handle_one_batch(*, sender=None, trigger=DeliveryAttempt.Trigger.SCHEDULED, result=None):
    """Claim, send and record one batch; return True if any delivery was claimed.

    Returns False when there is nothing due, sync is off, or Alpine is paused:
    a caller loops ``while handle_one_batch(): ...``.
    """
    result = result if result is not None else PassResult()
    config = alpine_config()
    if not config.active:
        result.skipped_reason = config.off_reason
        return False
    paused = destination_pause(config)
    if paused is not None:
        result.skipped_reason = f"paused until {paused.paused_until:%Y-%m-%d %H:%M:%S} UTC: {paused.pause_reason}"
        return False
    owner, rows = claim_batch(limit=settings.SIGNALHUB_SYNC_BATCH_SIZE)
    if not rows:
        return False
    own_sender = sender is None
    sender = sender or client.Sender(settings.SIGNALHUB_SYNC_CONCURRENCY)
    deadline = time.monotonic() + settings.SIGNALHUB_SYNC_LEASE_SECONDS - config.timeout - LEASE_MARGIN_SECONDS
    try:
        results = _send_all(rows, config, sender, deadline=deadline, stop=threading.Event())
        result.add(_record(rows, owner, results, config, trigger))
    except Exception:
        logger.exception("a delivery pass failed; parking its %d deliveries", len(rows))
        park_rows(rows, owner)
        result.parked += len(rows)
    finally:
        if own_sender:
            sender.close()
    return True


def park_rows(rows, owner):
    """Push out rows whose pass failed inside SignalHub so they cannot crash-loop the worker."""
    until = timezone.now() + timedelta(seconds=settings.SIGNALHUB_SYNC_PARK_SECONDS)
    for row in rows:
        row.park(owner, until, error_class=client.INTERNAL,
                 reason="SignalHub failed while delivering this row (see the worker's log); parked")


def deliver_pending(*, sender=None, max_seconds=None):
    """Run passes until nothing is due (or ``max_seconds``); return the summed PassResult."""
    total = PassResult()
    started = time.monotonic()
    own_sender = sender is None
    sender = sender or client.Sender(settings.SIGNALHUB_SYNC_CONCURRENCY)
    try:
        while handle_one_batch(sender=sender, result=total):
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                break
    finally:
        if own_sender:
            sender.close()
    return total


def drain(*, max_seconds=None, stop=None, sleep=time.sleep, progress=None):
    """Deliver until nothing is pending or retrying, waiting out backoff and pauses; return the PassResult.

    Stops early at ``max_seconds``, when ``stop`` (an Event) is set, or when
    sync is off (nothing could move).
    """
    total = PassResult()
    stop = stop or threading.Event()
    started = time.monotonic()
    with client.Sender(settings.SIGNALHUB_SYNC_CONCURRENCY) as sender:
        while not stop.is_set():
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                break
            worked = handle_one_batch(sender=sender, result=total)
            if progress:
                progress(total)
            if worked:
                continue
            if total.skipped_reason.startswith("sync off"):
                break
            if total.skipped_reason.startswith("paused") and Destination.objects.alpine().last_status_code in (401, 403, 404):
                # A wrong key or URL does not fix itself while we wait: stop and say so.
                break
            wait = seconds_until_next_due()
            if wait is None:
                break
            total.skipped_reason = ""
            if max_seconds is not None:
                wait = min(wait, max(0.0, max_seconds - (time.monotonic() - started)))
            sleep(min(max(wait, 0.01), DRAIN_NAP_MAX))
    return total


def seconds_until_next_due(now=None):
    """Return seconds until an undelivered row (or a paused destination) is due; None when none is left."""
    now = now or timezone.now()
    nxt = Delivery.objects.undelivered().aggregate(at=Min("next_attempt_at"))["at"]
    if nxt is None:
        return None
    destination = Destination.objects.alpine()
    if destination.is_paused(now):
        nxt = max(nxt, destination.paused_until)
    return max(0.0, (nxt - now).total_seconds())


# Staff actions -------------------------------------------------------------------

def retry_now(pks):
    """Send these deliveries at once (trigger manual); return the PassResult.

    Undelivered, dead and cancelled rows qualify (not one being sent under a
    live lease). A failed manual try keeps the row's own schedule and count,
    and never touches other rows.
    """
    config = alpine_config()
    result = PassResult()
    if not config.active:
        result.skipped_reason = config.off_reason
        return result
    now = timezone.now()
    owner = new_owner()
    lease_until = now + timedelta(seconds=settings.SIGNALHUB_SYNC_LEASE_SECONDS)
    candidates = (Delivery.objects.filter(pk__in=pks).exclude(state=Delivery.State.DELIVERED)
                  .exclude(state=Delivery.State.SENDING, lease_until__gt=now))
    before = {row.pk: {"state": row.state, "attempt_count": row.attempt_count, "next_attempt_at": row.next_attempt_at}
              for row in candidates}
    with transaction.atomic():
        # Conditional on the state read just now: a worker that claimed the row meanwhile keeps it.
        for pk, state in before.items():
            Delivery.objects.filter(pk=pk, state=state["state"]).exclude(
                state=Delivery.State.SENDING, lease_until__gt=now).update(
                state=Delivery.State.SENDING, lease_owner=owner, lease_until=lease_until, attempt_count=F("attempt_count") + 1)
    rows = list(Delivery.objects.filter(pk__in=list(before), lease_owner=owner).select_related("signal"))
    if not rows:
        return result
    with client.Sender(min(len(rows), settings.SIGNALHUB_SYNC_CONCURRENCY)) as sender:
        results = _send_all(rows, config, sender, deadline=time.monotonic() + settings.SIGNALHUB_SYNC_LEASE_SECONDS,
                            stop=threading.Event())
    # A row found under an expired lease goes back as retrying, not as sending.
    restore = {pk: {**state, "state": Delivery.State.RETRYING if state["state"] == Delivery.State.SENDING
                    else state["state"]} for pk, state in before.items()}
    result.add(_record(rows, owner, results, config, DeliveryAttempt.Trigger.MANUAL, manual_state=restore))
    return result
