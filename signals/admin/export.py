"""Stream signals as CSV: one row at a time from a server-side cursor, in bounded memory."""

import csv
import json
from datetime import datetime

from django.http import StreamingHttpResponse
from django.utils import timezone

from signals.ledger import hashing
from signals.models import Signal

# Every stored field, in the model's order.
COLUMNS = tuple(field.name for field in Signal._meta.concrete_fields)
ROWS_PER_CHUNK = 500
# A spreadsheet runs a cell starting with one of these as a formula; reasoning
# and ids come from generators, so such text gets a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() returns what it was given (csv.writer needs a file)."""

    def write(self, value):
        return value


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, datetime):
        return hashing.canonical_timestamp(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def iter_csv(queryset, *, chunk_size=2_000):
    """Yield the CSV text of ``queryset``: a header, then the rows in chunks of ``ROWS_PER_CHUNK`` lines."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    lines = []
    for row in queryset.values_list(*COLUMNS).iterator(chunk_size=chunk_size):
        lines.append(writer.writerow([_cell(value) for value in row]))
        if len(lines) >= ROWS_PER_CHUNK:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def csv_response(queryset, *, filename_prefix="signals"):
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(iter_csv(queryset), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename_prefix}-{stamp}.csv"'
    return response
