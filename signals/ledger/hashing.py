"""The verification hash, exactly as the Alpine receiver recomputes it.

Alpine parses the body, applies its defaults, and hashes
``json.dumps(fields, sort_keys=True, default=str)`` of nine fields. Any
difference in a float's repr, a default or the timestamp string makes Alpine
answer 400, so this is the one place the formula lives.
"""

import hashlib
import json
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii

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


# compute_hash's text, formatted directly for values clean_signal has already
# coerced: json.dumps(sort_keys=True) writes these keys in this order, each
# string as encode_basestring_ascii writes it and each float as its repr.
_CANONICAL = ('{"action": %s, "confidence": %s, "entry_price": %s, "signal_id": %s, "stop_price": %s, '
              '"strategy": %s, "symbol": %s, "target_price": %s, "timestamp": %s}')
_string = encode_basestring_ascii
_float = float.__repr__


def hash_cleaned(signal_id, symbol, action, entry_price, target_price, stop_price, confidence, strategy,
                 timestamp) -> str:
    """``compute_hash`` of values ``clean_signal`` has already coerced, on log_signal's hot path.

    The prices and confidence are finite floats (or None), the action upper
    case, the strategy filled in and the timestamp aware in UTC, so
    canonical_fields would change nothing and the text can be formatted
    directly. Tests check it against compute_hash and the Alpine vectors.
    """
    return hashlib.sha256((_CANONICAL % (
        _string(action), _float(confidence), _float(entry_price), _string(signal_id),
        "null" if stop_price is None else _float(stop_price), _string(strategy), _string(symbol),
        "null" if target_price is None else _float(target_price), _string(timestamp.isoformat()),
    )).encode()).hexdigest()
