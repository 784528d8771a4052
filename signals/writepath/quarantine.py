"""What the writer keeps of the records it cannot store: conflicts and quarantined records.

A conflict (a signal_id stored with other content) is one ``SignalConflict``
row per refused version, counted again when it comes back; a record that can
never be a row is a ``QuarantinedRecord`` with the reason, added once however
often its line is replayed.
"""

import hashlib
import json
import logging

from django.db.models import F
from django.utils import timezone

from signals.models import QuarantinedRecord, SignalConflict

logger = logging.getLogger(__name__)


def storable(text: str) -> str:
    """Return ``text`` as any database stores it: NUL and lone surrogates escaped."""
    # PostgreSQL text cannot hold NUL; neither database's driver binds a lone surrogate.
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def error_text(exc) -> str:
    """Return an error's message as text any database stores (no NUL, no lone surrogate)."""
    return storable(str(exc))


def record_conflicts(conflicts) -> int:
    """Record each ``(item, incoming content, stored content)``; return how many."""
    now = timezone.now()
    for item, incoming, stored in conflicts:
        signal_id = item.values["signal_id"]
        digest = hashlib.sha256(incoming.encode()).hexdigest()
        logger.warning("conflict: signal %s arrived with different content from %s; the stored version is kept",
                       signal_id, item.source)
        updated = SignalConflict.objects.filter(signal_id=signal_id, incoming_digest=digest).update(
            occurrences=F("occurrences") + 1, last_seen=now, source=item.source[:300])
        if not updated:
            SignalConflict.objects.create(
                signal_id=signal_id, stored=json.loads(stored), incoming=json.loads(incoming),
                incoming_digest=digest, source=item.source[:300], first_seen=now, last_seen=now)
    return len(conflicts)


def quarantine(items) -> int:
    """Keep each item (its ``raw`` record and ``error``) as a QuarantinedRecord; return how many."""
    if not items:
        return 0
    rows = []
    for item in items:
        logger.error("quarantined a record from %s: %s", item.source, item.error)
        raw = item.raw.decode("utf-8", "replace") if isinstance(item.raw, bytes) else item.raw
        # A damaged line may hold NUL, an imported record a lone surrogate: kept escaped.
        raw = storable(raw)
        source = storable(item.source)
        fingerprint = hashlib.sha256(f"{source}\n{raw}".encode()).hexdigest()
        rows.append(QuarantinedRecord(reason=storable(item.error or "unknown"), raw=raw, source=source[:300],
                                      fingerprint=fingerprint))
    # ignore_conflicts: the same line replayed again (after a crash) is already
    # quarantined under the same fingerprint; it is counted, not added twice.
    QuarantinedRecord.objects.bulk_create(rows, ignore_conflicts=True)
    return len(items)
