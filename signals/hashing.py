"""The verification hash, exactly as the Alpine receiver recomputes it.

Alpine parses the body, applies its defaults, and hashes
``json.dumps(fields, sort_keys=True, default=str)`` of nine fields. Any
difference in a float's repr, a default or the timestamp string makes Alpine
answer 400, so this is the one place the formula lives.
"""

import hashlib
import json
from datetime import UTC, datetime

DEFAULT_STRATEGY = "weighted_consensus_v6"


def canonical_timestamp(value: datetime) -> str:
    """Return the one string form a stored timestamp is hashed and sent as.

    UTC, ISO-8601 with a ``+00:00`` offset; microseconds only when non-zero
    (Python's isoformat), which is what the Alpine vectors use.
    """
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return value.astimezone(UTC).isoformat()


def _optional_float(value):
    return None if value is None else float(value)


def canonical_fields(*, signal_id, symbol, action, entry_price, target_price, stop_price,
                     confidence, strategy, timestamp) -> dict:
    """Return the nine fields Alpine hashes, with its coercions and defaults applied."""
    if isinstance(timestamp, datetime):
        timestamp = canonical_timestamp(timestamp)
    return {
        "signal_id": signal_id,
        "symbol": symbol,
        "action": action.upper(),
        "entry_price": float(entry_price),
        "target_price": _optional_float(target_price),
        "stop_price": _optional_float(stop_price),
        "confidence": float(confidence),
        "strategy": strategy or DEFAULT_STRATEGY,
        "timestamp": timestamp,
    }


# json.dumps(value, sort_keys=True, default=str), with the encoder built once
# rather than on every call (this is on log_signal's hot path); same output.
_encode_canonical = json.JSONEncoder(sort_keys=True, default=str).encode


def canonical_json(**fields) -> str:
    return _encode_canonical(canonical_fields(**fields))


def compute_hash(**fields) -> str:
    """Return the sha256 Alpine expects for these signal fields (see canonical_fields)."""
    return hashlib.sha256(canonical_json(**fields).encode("utf-8")).hexdigest()


# The same encoding without sort_keys, for a dict built with its keys already in sorted order.
_encode_sorted = json.JSONEncoder(default=str).encode


def hash_cleaned(signal_id, symbol, action, entry_price, target_price, stop_price, confidence, strategy,
                 timestamp) -> str:
    """``compute_hash`` of values ``clean_signal`` has already coerced, on log_signal's hot path.

    The prices and confidence are floats (or None), the action upper case, the
    strategy filled in and the timestamp aware in UTC, so canonical_fields would
    change nothing: the same text is built directly, keys in sorted order.
    """
    return hashlib.sha256(_encode_sorted({
        "action": action, "confidence": confidence, "entry_price": entry_price, "signal_id": signal_id,
        "stop_price": stop_price, "strategy": strategy, "symbol": symbol, "target_price": target_price,
        "timestamp": timestamp.isoformat(),
    }).encode()).hexdigest()
