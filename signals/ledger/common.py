"""The common case of ``clean_signal``, on ``log_signal``'s hot path.

A plain dict of known generator fields, every one valid, numbers as numbers:
one pass with no error bookkeeping, no copy of the input and no calls per
field. ``clean_common`` returns exactly what the general path
(``signals.ledger.validation``) returns, or None as soon as anything is unusual
(a wrong value, text for a number, an alias, metadata, a supplied hash that
does not match); the general path then produces the result or the errors with
their usual messages. A test compares the two.
"""

import math
from datetime import UTC, datetime

from signals.ledger import hashing
from signals.ledger.fields import (
    ACTIONS,
    FUTURE_TOLERANCE,
    GENERATOR_FIELDS,
    MAX_LENGTHS,
    MAX_PRICE,
    OPTIONAL_TEXT,
    SOURCES_COUNT_MAX,
    SYMBOL_RE,
    TEXT_DEFAULTS,
)
from signals.ledger.ids import new_signal_id
from signals.ledger.storable import unstorable

# The keys the common case reads: a generator's fields, metadata aside.
COMMON_KEYS = frozenset(GENERATOR_FIELDS) - {"metadata"}
_TEXT_FIELDS = tuple((field, default, MAX_LENGTHS[field], True) for field, default in TEXT_DEFAULTS.items()) + tuple(
    (field, "", MAX_LENGTHS[field], field != "reasoning") for field in OPTIONAL_TEXT)
_SIGNAL_ID_MAX = MAX_LENGTHS["signal_id"]
_SYMBOL_MAX = MAX_LENGTHS["symbol"]
_symbol_match = SYMBOL_RE.fullmatch
_finite = math.isfinite


def _common_price(value):
    kind = type(value)
    if kind is float or kind is int:
        try:
            value = float(value)
        except OverflowError:
            return None
        if _finite(value) and 0 < value <= MAX_PRICE:
            return value
    return None


def _common_percent(value):
    kind = type(value)
    # Compared before float(): a huge int would overflow; NaN fails the comparison.
    if (kind is float or kind is int) and 0 <= value <= 100:
        return float(value) + 0.0  # -0.0 as 0.0, as in _number
    return None


def clean_common(data, now):
    """Return the cleaned values of a plain dict of valid generator fields; None if anything is unusual."""
    get = data.get
    signal_id = get("signal_id")
    if signal_id is None or (type(signal_id) is str and not signal_id):
        signal_id = new_signal_id()
    elif (type(signal_id) is not str or len(signal_id) > _SIGNAL_ID_MAX or not signal_id.isprintable()
          or signal_id != signal_id.strip()):
        return None
    symbol, action = get("symbol"), get("action")
    if type(symbol) is not str or type(action) is not str:
        return None
    symbol, action = symbol.strip().upper(), action.strip().upper()
    if len(symbol) > _SYMBOL_MAX or not _symbol_match(symbol) or action not in ACTIONS:
        return None
    entry_price = _common_price(get("entry_price"))
    confidence = _common_percent(get("confidence"))
    if entry_price is None or confidence is None:
        return None
    values = {"signal_id": signal_id, "symbol": symbol, "action": action, "entry_price": entry_price}
    for field in ("target_price", "stop_price"):
        value = get(field)
        if value is not None:
            value = _common_price(value)
            if value is None:
                return None
            values[field] = value
    values["confidence"] = confidence
    value = get("consensus_agreement")
    if value is not None:
        value = _common_percent(value)
        if value is None:
            return None
        values["consensus_agreement"] = value
    value = get("sources_count")
    if value is not None:
        if type(value) is not int or not 0 <= value <= SOURCES_COUNT_MAX:
            return None
        values["sources_count"] = value
    for field, default, limit, printable in _TEXT_FIELDS:
        value = get(field)
        if value is None or (type(value) is str and not value):
            values[field] = default
        elif type(value) is not str or len(value) > limit or (
                not value.isprintable() if printable else unstorable(value)):
            # (not printable covers NUL and lone surrogates)
            return None
        else:
            values[field] = value
    timestamp = get("timestamp")
    if timestamp is None or (type(timestamp) is str and not timestamp):
        timestamp = now
    else:
        if type(timestamp) is str:
            try:
                timestamp = datetime.fromisoformat(timestamp.strip())
            except ValueError:
                return None
        elif type(timestamp) is not datetime:
            return None  # a subclass may override astimezone(): the general path copies it first
        try:
            timestamp = timestamp.replace(tzinfo=UTC) if timestamp.tzinfo is None else timestamp.astimezone(UTC)
        except (OverflowError, ValueError, TypeError):
            return None
        if timestamp > now + FUTURE_TOLERANCE:
            return None
    if timestamp.tzinfo is not UTC:
        return None  # a caller's ``now`` in another zone: hashed after conversion, by the general path
    values["timestamp"] = timestamp
    values["metadata"] = {}
    values["sha256"] = digest = hashing.hash_cleaned(
        signal_id, symbol, action, entry_price, values.get("target_price"), values.get("stop_price"),
        confidence, values["strategy"], timestamp)
    supplied = get("sha256")
    if not (supplied is None or (type(supplied) is str and not supplied)) and (type(supplied) is not str or supplied.lower() != digest):
        return None
    return values
