"""What both databases store and give back unchanged: the checks ``clean_signal`` makes for it.

A value validation accepts must survive the write path on SQLite and on
PostgreSQL and read back equal, or one signal can block the journal (PostgreSQL
refuses the whole batch) or poison every page that reads its row (SQLite stores
invalid UTF-8). The rules, each refused with a message naming the field:

- Text (every text field, metadata keys and strings) holds no NUL and no lone
  surrogate. PostgreSQL's text and jsonb refuse both; SQLite's JSON functions
  cut a string at a NUL and write a lone surrogate as invalid UTF-8.
- Timestamps convert to UTC inside Python's range (year 1 with a positive
  offset, or 9999-12-31 with a negative one, do not).
- Metadata is JSON of dicts with text keys, lists, text, booleans, null and
  numbers, at most ``METADATA_MAX_DEPTH`` deep (deeper, the encoders recurse
  out of stack). Integers lie in the signed 64-bit range (what SQLite's JSON
  functions read as integers; beyond it they read a float). Floats are finite
  and below 2**53 in magnitude: PostgreSQL's jsonb writes a larger float back
  as a whole number without an exponent, which Python reads as an integer of a
  different value (1.5e300 comes back as 15 followed by 299 zeros).
"""

from datetime import datetime
from decimal import Decimal

from signals.models import METADATA_MAX_BYTES, METADATA_MAX_DEPTH

UNSTORABLE_TEXT = "Must not contain NUL characters or lone surrogates: neither database can store them."

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
FLOAT_EXACT_LIMIT = float(1 << 53)


def unstorable(text: str) -> bool:
    """Return True if ``text`` holds a NUL or a lone surrogate."""
    # All in C, on log_signal's hot path: isascii() reads a flag of the string,
    # and a strict UTF-8 encode finds a lone surrogate without a Python-level
    # search (docs/benchmarks.md).
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def plain(value):
    """Return ``value`` as its exact base type if it is a subclass of str, int, float, Decimal or datetime.

    A subclass can override every method validation would call (``__contains__``,
    ``isascii``, ``__int__``, ``__float__``, ``astimezone``...), and would then be
    checked as one value and stored as another. The base type's own slots give an
    exact copy of what the object holds without running any of the caller's code.
    Exact types (the hot path) and every other type come back unchanged.
    """
    kind = type(value)
    if kind is str or kind is int or kind is float or value is None or kind is bool:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Decimal):
        return Decimal(value)
    if isinstance(value, datetime):
        return datetime.combine(datetime.date(value), datetime.timetz(value))
    return value


def shown(value) -> str:
    """Return a short, safe description of a refused value for an error message.

    Never repr() a value whole: a list nested thousands deep recurses out of
    stack and an integer of more than 4,300 digits raises.
    """
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(int(value)) if abs(value) < 10**30 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return repr(float(value))
    return f"a {type(value).__name__}"


def _path(parts) -> str:
    return "metadata" + "".join(f"[{part}]" if isinstance(part, int) else f"[{part[:40]!r}]" for part in parts)


class MetadataError(ValueError):
    """Metadata that cannot be stored as given (the message names the key path)."""


def plain_items(mapping, parts=()):
    """Yield the ``(key, value)`` pairs of ``mapping``, each key exact text, or raise MetadataError.

    A dict subclass is read through ``dict.items`` so none of its own methods
    run; any other mapping through its ``items()``, and whatever that raises is
    refused, naming the path. No key is hashed here, so a key whose ``__hash__``
    raises is refused by its type, not by its exception. Lazy, so that
    ``clean_json`` can stop early on a huge mapping.
    """
    if isinstance(mapping, dict):
        items = dict.items(mapping)
    else:
        try:
            items = list(mapping.items())
        except Exception as exc:  # the caller's own mapping failed while being read
            raise MetadataError(f"{_path(parts)}: could not be read ({type(exc).__name__}).") from None
    for key, value in items:
        if type(key) is not str:
            if not isinstance(key, str):
                raise MetadataError(f"{_path(parts)}: keys must be text; got {shown(key)}.")
            key = str.__str__(key)
        yield key, value


def clean_json(root: dict) -> dict:
    """Return a plain copy of ``root`` that both databases hold exactly, or raise MetadataError.

    Walked without recursion, so a structure nested too deep (or holding
    itself) is refused by depth, never a RecursionError. Tuples become lists
    and subclasses of dict, list, int, float and str their base type, which is
    what reading the row back gives. The walk stops once the values seen
    already take more than METADATA_MAX_BYTES as JSON (counted low: the exact
    size is checked on the encoded text), so a huge input costs no more than
    that.
    """
    budget = METADATA_MAX_BYTES
    copy = {}
    # (source container, its copy, depth of its children, key path)
    stack = [(root, copy, 1, ())]
    while stack:
        source, target, depth, parts = stack.pop()
        # The base types' own iterators: a subclass's items() or __iter__ never runs.
        is_dict = isinstance(source, dict)
        if is_dict:
            items = plain_items(source, parts)
        elif isinstance(source, list):
            items = enumerate(list.__iter__(source))
        else:
            items = enumerate(tuple.__iter__(source))
        for key, value in items:
            if is_dict:
                if unstorable(key):
                    raise MetadataError(f"{_path(parts)}: key {key[:40]!r}: {UNSTORABLE_TEXT}")
                budget -= len(key) + 3
            here = (*parts, key)
            # Checked on the exact value, which is what is stored (see plain()).
            value = plain(value)
            if value is None or value is True or value is False:
                item = value
                budget -= 4
            elif type(value) is str:
                if unstorable(value):
                    raise MetadataError(f"{_path(here)}: {UNSTORABLE_TEXT}")
                item = value
                budget -= len(value) + 2
            elif type(value) is int:
                if not INT64_MIN <= value <= INT64_MAX:
                    raise MetadataError(f"{_path(here)}: integers must lie in the signed 64-bit range; got {shown(value)}. "
                                        "Send a larger number as text.")
                item = value
                budget -= 1
            elif type(value) is float:
                if not -FLOAT_EXACT_LIMIT < value < FLOAT_EXACT_LIMIT:
                    raise MetadataError(f"{_path(here)}: floats must be finite and below 2**53 in magnitude; "
                                        f"got {shown(value)}. Send it as text.")
                item = value
                budget -= 1
            elif isinstance(value, (dict, list, tuple)):
                if depth >= METADATA_MAX_DEPTH:
                    raise MetadataError(f"{_path(parts)}: nested more than {METADATA_MAX_DEPTH} levels deep.")
                item = {} if isinstance(value, dict) else []
                stack.append((value, item, depth + 1, here))
                budget -= 2
            else:
                raise MetadataError(f"{_path(here)}: must hold JSON values (text, numbers, true, false, null, "
                                    f"lists, mappings); got {shown(value)}.")
            if budget < 0:
                raise MetadataError(f"Extra keys take more than {METADATA_MAX_BYTES} bytes as JSON; "
                                    f"at most {METADATA_MAX_BYTES} are kept.")
            if isinstance(target, dict):
                target[key] = item
            else:
                target.append(item)
    return copy
