"""The one reader of the dates and times that commands take (``--before``, ``--since``, ``--until``)."""

from datetime import UTC

from django.utils.dateparse import parse_datetime


def parse_moment(text):
    """Return the aware datetime ``text`` names: a date is its midnight, and a time without an offset is UTC.

    Accepts what ``datetime.fromisoformat`` accepts (``2025-06-01``,
    ``2025-06-01T12:30``, ``2025-06-01 12:30:00+02:00``, ``...Z``) and
    Django's looser date-time pattern. Raises ValueError otherwise.
    """
    try:
        # A date alone reads as its midnight (datetime.fromisoformat, Python 3.11).
        parsed = parse_datetime(text.strip())
    except ValueError:  # well formed but impossible, such as 2025-02-30
        parsed = None
    if parsed is None:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO date-time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
