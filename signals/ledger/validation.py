"""The one validation entry point every ingest path uses.

``clean_signal(data)`` turns what a generator (or an import) handed over into
the values a ``Signal`` row is made of, or raises Django's ``ValidationError``
whose ``message_dict`` names every bad field with the reason. Nothing is
written here. It is on the hot path of ``log_signal``, so it is plain Python
rather than a Django form; the common case (a plain dict of valid fields) is
``signals.ledger.common``, and this module gives the errors.
"""

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone

from signals.ledger import fields, hashing
from signals.ledger.common import COMMON_KEYS, clean_common
from signals.ledger.fields import (
    ACTIONS,
    ALIASES,
    FUTURE_TOLERANCE,
    MAX_LENGTHS,
    MAX_PRICE,
    METADATA_MAX_BYTES,
    OPTIONAL_TEXT,
    OUTCOMES,
    PROFIT_LOSS_MAX,
    SHA256_RE,
    SOURCES_COUNT_MAX,
    SYMBOL_RE,
    TEXT_DEFAULTS,
)
from signals.ledger.ids import new_signal_id
from signals.ledger.storable import (
    UNSTORABLE_TEXT, MetadataError, clean_json, plain, plain_items, shown, unstorable,
)

# What a generator may not set: cleaned as such for imports, refused otherwise.
LIFECYCLE_FIELDS = (*fields.LIFECYCLE_FIELDS, *fields.PROVENANCE_FIELDS)
KNOWN_FIELDS = {*fields.GENERATOR_FIELDS, *ALIASES}

# Lifecycle fields are cleaned as such (imports) or refused (generators), never
# also copied into metadata.
_NOT_EXTRA = frozenset(KNOWN_FIELDS | set(LIFECYCLE_FIELDS))


def _empty(value):
    # By type first: comparing an arbitrary object with "" runs its own __eq__, which may raise.
    return type(value) is str and not value


def _absent(value):
    return value is None or (type(value) is str and not value)


class _Errors(dict):
    def add(self, field, message):
        self.setdefault(field, []).append(message)


def _number(data, field, errors, *, required, minimum=None, maximum=None, exclusive_minimum=None):
    value = data.get(field)
    if value is None:
        if required:
            errors.add(field, "This field is required.")
        return None
    if isinstance(value, bool):
        errors.add(field, "Must be a number, not a boolean.")
        return None
    if isinstance(value, (int, float, Decimal)):
        try:
            number = float(value)
        except (OverflowError, ValueError):  # a huge int; Decimal("sNaN")
            errors.add(field, "Must be a finite number.")
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            errors.add(field, f"Must be a number; got the text {value[:40]!r}.")
            return None
    else:
        errors.add(field, f"Must be a number; got {type(value).__name__}.")
        return None
    if not math.isfinite(number):
        errors.add(field, "Must be a finite number (NaN and infinity are refused).")
        return None
    if exclusive_minimum is not None and number <= exclusive_minimum:
        errors.add(field, f"Must be greater than {exclusive_minimum:g}; got {number!r}.")
        return None
    if minimum is not None and number < minimum:
        errors.add(field, f"Must be at least {minimum:g}; got {number!r}.")
        return None
    if maximum is not None and number > maximum:
        errors.add(field, f"Must be at most {maximum:g}; got {number!r}.")
        return None
    # + 0.0 turns -0.0 into 0.0: SQLite gives -0.0 back as 0.0, and the hash would change.
    return number + 0.0


def _text(data, field, errors, *, required=False, default=None, printable=True):
    value = data.get(field)
    if value is None or (_empty(value) and not required):
        if required:
            errors.add(field, "This field is required.")
        return default
    if not isinstance(value, str):
        errors.add(field, f"Must be text; got {type(value).__name__}.")
        return None
    limit = MAX_LENGTHS[field]
    if len(value) > limit:
        errors.add(field, f"Must be at most {limit} characters; got {len(value)}.")
        return None
    if required and not value.strip():
        errors.add(field, "Must not be blank.")
        return None
    if unstorable(value):
        errors.add(field, UNSTORABLE_TEXT)
        return None
    if printable and not value.isprintable():
        errors.add(field, "Must not contain control characters.")
        return None
    return value


def _timestamp(data, field, errors, *, required, now):
    value = data.get(field)
    if _absent(value):
        if required:
            errors.add(field, "This field is required.")
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            errors.add(field, f"Must be an ISO-8601 date and time; got {value[:40]!r}.")
            return None
    elif not isinstance(value, datetime):
        errors.add(field, f"Must be an ISO-8601 date and time; got {type(value).__name__}.")
        return None
    # The legacy tracker wrote naive times in UTC.
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        errors.add(field, f"Is outside the years 1 to 9999 once converted to UTC: {_isoformat(value)}.")
        return None
    except Exception as exc:
        # The caller's own tzinfo: utcoffset() out of range (ValueError), not a
        # timedelta (TypeError), or raising whatever it likes.
        errors.add(field, f"Has a time zone whose UTC offset cannot be used ({type(exc).__name__}).")
        return None
    if value > now + FUTURE_TOLERANCE:
        errors.add(field, f"Is more than {FUTURE_TOLERANCE} in the future: {value.isoformat()}.")
        return None
    return value


def _isoformat(value):
    try:
        return value.isoformat()
    except Exception:  # the caller's tzinfo may fail a second time
        return value.replace(tzinfo=None).isoformat() + " (with an unreadable offset)"


def _metadata(data, errors):
    """Collect the keys SignalHub does not know, so a generator's extra data is kept, not lost.

    Returns what the row will hold and give back (``signals.ledger.storable.clean_json``).
    """
    extra = {key: value for key, value in data.items() if key not in _NOT_EXTRA}
    explicit = data.get("metadata")
    try:
        if explicit is not None:
            if not isinstance(explicit, Mapping):
                errors.add("metadata", f"Must be a mapping; got {type(explicit).__name__}.")
                return {}
            # Read without running a dict subclass's own methods; the unknown keys win.
            extra = {**dict(plain_items(explicit)), **extra}
        if not extra:
            return {}
        extra = clean_json(extra)
    except MetadataError as exc:
        errors.add("metadata", str(exc))
        return {}
    # Exact now that clean_json has bounded the depth and the types.
    encoded = json.dumps(extra, allow_nan=False)
    if len(encoded) > METADATA_MAX_BYTES:
        errors.add("metadata", f"Extra keys take {len(encoded)} bytes as JSON; at most {METADATA_MAX_BYTES} are kept.")
        return {}
    return extra


def clean_signal(data, *, lifecycle=False, now=None):
    """Return the field values of a Signal row made from ``data``, or raise ValidationError.

    Fills ``signal_id`` (a new time-ordered id) and ``sha256`` (the Alpine hash)
    when absent; a supplied hash must match the fields. ``timestamp`` defaults
    to now. Keys SignalHub does not know go to ``metadata``. With
    ``lifecycle=True`` (imports) the lifecycle fields are accepted too;
    otherwise they are refused, since a generator does not set them.
    """
    if not lifecycle and type(data) is dict:
        try:
            values = clean_common(data, now or timezone.now()) if data.keys() <= COMMON_KEYS else None
        except Exception:
            # Only the caller's own objects can raise here (a key's __eq__ or
            # __hash__, a tzinfo): the general path reads them safely and names
            # the field. A try costs nothing when nothing is raised.
            values = None
        if values is not None:
            return values
    return _clean_general(data, lifecycle=lifecycle, now=now)


def _plain_fields(data):
    """Return ``data`` as a dict of exact keys and values (``storable.plain``), or raise ValidationError.

    Subclasses of str, int, float and datetime are copied to their base type
    before any check, so what is checked is what is stored; dict and list
    values are read the same way by ``clean_json``. A mapping that fails while
    being read (its own items(), a key's __hash__) is refused, not propagated.
    """
    if not isinstance(data, Mapping):
        raise ValidationError({NON_FIELD_ERRORS: [f"A signal must be a mapping of fields; got {type(data).__name__}."]})
    try:
        items = dict.items(data) if isinstance(data, dict) else list(data.items())
        return {plain(key): plain(value) for key, value in items}
    except Exception as exc:  # the caller's own mapping or keys
        raise ValidationError({NON_FIELD_ERRORS: [
            f"The signal could not be read as a mapping of fields ({type(exc).__name__})."]}) from None


def _clean_general(data, *, lifecycle, now):
    data = _plain_fields(data)
    now = now or timezone.now()
    for alias, name in ALIASES.items():
        if data.get(alias) is not None:
            data[name] = data[alias]
    errors = _Errors()
    lifecycle_keys = [key for key in LIFECYCLE_FIELDS if key in data]
    if lifecycle_keys and not lifecycle:
        for key in lifecycle_keys:
            errors.add(key, "Is a lifecycle field: set by recording an execution or closing the position, not by the generator.")

    values = {}
    signal_id = data.get("signal_id")
    if _absent(signal_id):
        values["signal_id"] = new_signal_id()
    else:
        signal_id = _text(data, "signal_id", errors, required=True)
        if signal_id is not None and signal_id != signal_id.strip():
            errors.add("signal_id", "Must not start or end with whitespace.")
        values["signal_id"] = signal_id

    symbol = data.get("symbol")
    if _absent(symbol):
        errors.add("symbol", "This field is required.")
    elif not isinstance(symbol, str):
        errors.add("symbol", f"Must be text; got {type(symbol).__name__}.")
    else:
        symbol = symbol.strip().upper()
        if len(symbol) > MAX_LENGTHS["symbol"]:
            errors.add("symbol", f"Must be at most {MAX_LENGTHS['symbol']} characters; got {len(symbol)}.")
        elif not SYMBOL_RE.fullmatch(symbol):
            errors.add("symbol", "May contain only letters, digits and . - / _ = ^ :")
        else:
            values["symbol"] = symbol

    action = data.get("action")
    if _absent(action):
        errors.add("action", "This field is required.")
    elif not isinstance(action, str) or action.strip().upper() not in ACTIONS:
        errors.add("action", f"Must be BUY or SELL; got {shown(action)}.")
    else:
        values["action"] = action.strip().upper()

    values["entry_price"] = _number(data, "entry_price", errors, required=True, exclusive_minimum=0, maximum=MAX_PRICE)
    values["target_price"] = _number(data, "target_price", errors, required=False, exclusive_minimum=0, maximum=MAX_PRICE)
    values["stop_price"] = _number(data, "stop_price", errors, required=False, exclusive_minimum=0, maximum=MAX_PRICE)
    values["confidence"] = _number(data, "confidence", errors, required=True, minimum=0, maximum=100)
    values["consensus_agreement"] = _number(data, "consensus_agreement", errors, required=False, minimum=0, maximum=100)

    sources_count = data.get("sources_count")
    if sources_count is not None:
        if (isinstance(sources_count, bool) or not isinstance(sources_count, int)
                or not 0 <= sources_count <= SOURCES_COUNT_MAX):
            errors.add("sources_count", f"Must be a whole number from 0 to {SOURCES_COUNT_MAX}; got {shown(sources_count)}.")
        else:
            values["sources_count"] = int(sources_count)

    for field, default in TEXT_DEFAULTS.items():
        values[field] = _text(data, field, errors, default=default)
    for field in OPTIONAL_TEXT:
        values[field] = _text(data, field, errors, default="", printable=(field != "reasoning"))

    timestamp = _timestamp(data, "timestamp", errors, required=False, now=now)
    if "timestamp" not in errors:
        values["timestamp"] = timestamp or now

    values["metadata"] = _metadata(data, errors)

    if lifecycle:
        values.update(_clean_lifecycle(data, errors, now=now))

    supplied_hash = data.get("sha256")
    if not _absent(supplied_hash):
        if not isinstance(supplied_hash, str) or not SHA256_RE.fullmatch(supplied_hash.lower()):
            errors.add("sha256", "Must be 64 hexadecimal characters.")
            supplied_hash = None
        else:
            supplied_hash = supplied_hash.lower()

    if errors:
        raise ValidationError(dict(errors))

    values["sha256"] = hashing.compute_hash(
        signal_id=values["signal_id"], symbol=values["symbol"], action=values["action"],
        entry_price=values["entry_price"], target_price=values["target_price"],
        stop_price=values["stop_price"], confidence=values["confidence"],
        strategy=values["strategy"], timestamp=values["timestamp"],
    )
    if supplied_hash and supplied_hash != values["sha256"]:
        raise ValidationError({"sha256": [
            f"Does not match the signal's fields: the Alpine formula gives {values['sha256']}."
        ]})
    return {key: value for key, value in values.items() if value is not None}


def _clean_lifecycle(data, errors, *, now):
    values = {}
    outcome = data.get("outcome")
    if not _absent(outcome):
        if not isinstance(outcome, str) or outcome.strip().lower() not in OUTCOMES:
            errors.add("outcome", f"Must be one of {', '.join(OUTCOMES)} or empty (open); got {shown(outcome)}.")
        else:
            values["outcome"] = outcome.strip().lower()
    values["exit_price"] = _number(data, "exit_price", errors, required=False, exclusive_minimum=0, maximum=MAX_PRICE)
    values["profit_loss_pct"] = _number(data, "profit_loss_pct", errors, required=False,
                                        minimum=-PROFIT_LOSS_MAX, maximum=PROFIT_LOSS_MAX)
    values["exit_timestamp"] = _timestamp(data, "exit_timestamp", errors, required=False, now=now)
    values["created_at"] = _timestamp(data, "created_at", errors, required=False, now=now)
    for field in ("order_id", "executor_id"):
        values[field] = _text(data, field, errors)
    legacy = data.get("legacy_sha256")
    try:
        present = bool(legacy)
    except Exception:  # the caller's own __bool__ or __len__: refused below as not text
        present = True
    if present:
        if not isinstance(legacy, str) or len(legacy) > MAX_LENGTHS["legacy_sha256"]:
            errors.add("legacy_sha256", f"Must be text of at most {MAX_LENGTHS['legacy_sha256']} characters.")
        elif unstorable(legacy):
            errors.add("legacy_sha256", UNSTORABLE_TEXT)
        else:
            values["legacy_sha256"] = legacy
    if values["exit_price"] is not None and values["exit_timestamp"] is None:
        values["exit_timestamp"] = now
    return values


def first_errors(error: ValidationError) -> str:
    """Return a one-line summary of a ValidationError: ``field: reason; field: reason``."""
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {messages[0]}" for field, messages in error.message_dict.items())
    return "; ".join(error.messages)

