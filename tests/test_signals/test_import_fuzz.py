"""Fuzzing the importers: whatever a file holds, every record is imported or refused by its line number.

Hypothesis runs with ``derandomize=True`` (examples derived from the test's
code, the same on every run and machine) and no example database, so CI sees
the same few hundred files each time, in well under 20 s.
"""

import csv
import io
import itertools
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signals.models import Signal
from signals.writepath.importers import import_signals

pytestmark = pytest.mark.django_db

FUZZ = settings(derandomize=True, database=None, max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BOM = b"\xef\xbb\xbf"
_ids = itertools.count(1)


def pristine():
    """A record every importer must store: a fresh id, nothing odd."""
    return {"signal_id": f"FUZZ-{next(_ids):08d}", "symbol": "NVDA", "action": "SELL", "entry_price": 410.5,
            "confidence": 66, "timestamp": "2025-11-18T14:30:00Z"}


# Hostile values, as JSON text (so that escapes such as \ud800 reach json.loads as they would from a file).
deep = st.integers(min_value=1, max_value=4000).map(lambda n: "[" * n + "]" * n)
specials = st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\u0000"', '"x\\u0000y"', "1e999", "-1e400", "1" * 5000,
                            str(2 ** 70), str(-2 ** 63), "NaN", "Infinity", "true", "null", "[]", "{}", '""', '"   "',
                            '"\\u001b[2J"', '"\\u202e"', '{"\\ud800": 1}', '{"k": "\\u0000"}', '"0001-01-01T00:00:00+14:00"',
                            '"9999-12-31T23:59:59-14:00"'])
# The hand-picked values get half the draws: they are the classes a database refuses or corrupts.
hostile_json_values = st.one_of(specials, specials, deep, st.text(max_size=20).map(json.dumps), st.integers().map(str),
                                st.floats(allow_nan=False).map(json.dumps))
FIELDS = ["signal_id", "symbol", "action", "entry_price", "sources_count", "metadata", "reasoning", "timestamp",
          "regime", "\ud800", "extra_column"]


@st.composite
def hostile_json_line(draw):
    record = pristine()
    for name in draw(st.lists(st.sampled_from(list(record)), max_size=3)):
        record.pop(name, None)  # missing columns
    text = json.dumps(record)[:-1]
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3)):
        text += f", {json.dumps(name)}: {draw(hostile_json_values)}"
    line = (text + "}").encode("utf-8", "surrogatepass")
    return draw(st.sampled_from([line, line, line[: len(line) // 2], b"\x00" + line, line + b"\r", BOM + line]))


@st.composite
def jsonl_file(draw):
    """Return (file bytes, {line number: signal id} of the pristine lines)."""
    lines, expected = [], {}
    kinds = st.sampled_from(["pristine", "hostile", "hostile", "bytes", "blank"])
    for number in range(1, draw(st.integers(min_value=1, max_value=12)) + 1):
        kind = draw(kinds)
        if kind == "pristine":
            record = pristine()
            expected[number] = record["signal_id"]
            lines.append(json.dumps(record).encode())
        elif kind == "hostile":
            lines.append(draw(hostile_json_line()))
        elif kind == "bytes":
            lines.append(draw(st.binary(max_size=80)).replace(b"\n", b"\\n"))
        else:
            lines.append(draw(st.sampled_from([b"", b"  ", b"\t\r"])))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = ending.join(lines) + draw(st.sampled_from([ending, b""]))
    return (BOM + data if draw(st.booleans()) else data), expected


def import_file(data, suffix, fmt):
    """Import ``data`` through the real importer and writer; return (report, refused line numbers)."""
    refused = []
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"fuzz.{suffix}"
        path.write_bytes(data)
        report = import_signals(path, fmt, progress=False, on_refused=lambda where, problems: refused.append(where))
    numbers = []
    for where in refused:
        match = re.fullmatch(r"lines? (\d+)(?:-(\d+))?", where)
        assert match, f"a refusal without a line number: {where!r}"
        numbers.append(int(match.group(1)))
    physical = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    assert all(1 <= n <= physical for n in numbers), (numbers, physical)
    assert len(set(numbers)) == len(numbers), f"a line refused twice: {numbers}"
    # Every record read is accounted for: stored, duplicate, conflict, or refused (here or by the database).
    assert report.read == report.imported + report.duplicates + report.conflicts + report.rejected
    quarantined = report.reasons.get("database", {}).get("count", 0)
    assert report.rejected == len(refused) + quarantined
    return report, set(numbers)


@FUZZ
@given(jsonl_file())
def test_any_jsonl_file_is_imported_or_refused_line_by_line(case):
    data, expected = case
    report, refused = import_file(data, "jsonl", "jsonl")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    non_blank = sum(1 for n, line in enumerate(lines, 1) if (line[len(BOM):] if n == 1 and line.startswith(BOM)
                                                             else line).strip())
    assert report.read == non_blank, "a non-blank line was neither imported nor refused"
    assert not refused & set(expected), "a pristine line was refused"
    stored = set(Signal.objects.filter(signal_id__in=expected.values()).values_list("signal_id", flat=True))
    assert stored == set(expected.values())


CSV_HEADER = ["signal_id", "symbol", "action", "entry_price", "confidence", "timestamp", "sources_count",
              "metadata", "reasoning"]
hostile_cells = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "\x00", "a\r\nb", '"', '""', "\ufeff", "1" * 5000, "²", "٣", "1e999", "NaN", "-0",
                     "[" * 3000, '{"a": ' * 3000, "2025-13-45T99:99:99", "0001-01-01T00:00:00+14:00"]),
)


@st.composite
def csv_file(draw):
    """Return (file bytes, signal ids of the pristine rows, whether raw bytes may have broken record boundaries)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = draw(st.sampled_from([CSV_HEADER, CSV_HEADER + ["extra"], CSV_HEADER[:-2]]))
    writer.writerow(header)
    chunks, expected, raw_bytes = [buffer.getvalue().encode()], [], False
    for _ in range(draw(st.integers(min_value=1, max_value=10))):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        kind = draw(st.sampled_from(["pristine", "hostile", "hostile", "short", "long", "bytes"]))
        if kind == "pristine":
            record = pristine()
            row = [record.get(name, "") for name in header]
            if len(header) == len(CSV_HEADER):
                expected.append(record["signal_id"])
            writer.writerow(row)
        elif kind == "bytes":
            raw_bytes = True
            chunks.append(draw(st.binary(max_size=60)) + b"\n")
            continue
        else:
            row = [draw(hostile_cells) for _ in header]
            row = row[: len(row) // 2] if kind == "short" else row + ["x"] if kind == "long" else row
            writer.writerow(row)
        chunks.append(buffer.getvalue().encode("utf-8", "surrogateescape"))
    data = b"".join(chunks)
    return (BOM + data if draw(st.booleans()) else data), expected, raw_bytes


@FUZZ
@given(csv_file())
def test_any_csv_file_is_imported_or_refused_record_by_record(case):
    data, expected, raw_bytes = case
    import_file(data, "csv", "csv")
    if not raw_bytes:  # a stray quote in random bytes may join the next rows into one refused record
        stored = set(Signal.objects.filter(signal_id__in=expected).values_list("signal_id", flat=True))
        assert stored == set(expected)
