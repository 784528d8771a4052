"""import_signals against hostile files: each bad record is refused with its line and reason, and the run goes on."""

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from signals.models import Signal
from signals.writepath.import_readers import MAX_RECORD_BYTES
from tests.support import ROOT, process_env
from tests.test_signals.test_import import legacy_row, make_argo

pytestmark = pytest.mark.django_db


def good(n, **changes):
    record = {"signal_id": f"HOSTILE-{n}", "symbol": "MSFT", "action": "BUY", "entry_price": 300 + n,
              "confidence": 60, "timestamp": "2025-11-18T14:30:00Z"}
    record.update(changes)
    return record


def jsonl(*records):
    return b"".join((json.dumps(r).encode() if isinstance(r, dict) else r) + b"\n" for r in records)


def run_import(path, fmt, *extra):
    """Run the command in-process; return (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("import_signals", str(path), "--format", fmt, *extra, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def stored_ids():
    return set(Signal.objects.values_list("signal_id", flat=True))


def test_json_nested_too_deep_is_refused_and_the_next_lines_are_imported(tmp_path):
    path = tmp_path / "deep.jsonl"
    deep_metadata = json.dumps(good(2)).encode()[:-1] + b', "metadata": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001
    path.write_bytes(jsonl(good(1), b"[" * 200_000 + b"]" * 200_000, deep_metadata, good(3)))
    out, err = run_import(path, "jsonl")
    assert "imported 2, duplicates 0, conflicts 0, rejected 2" in out
    assert f"{path}:line 2: " in err and f"{path}:line 3: " in err and "nested too deep" in err.lower()
    assert stored_ids() == {"HOSTILE-1", "HOSTILE-3"}


def test_csv_field_over_the_csv_modules_limit_is_refused_and_the_next_rows_are_imported(tmp_path):
    path = tmp_path / "wide.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["signal_id", "symbol", "action", "entry_price", "confidence", "timestamp", "reasoning"])
    writer.writerow(["CSV-1", "AAPL", "BUY", "100", "70", "2025-11-18T14:30:00Z", "fine"])
    writer.writerow(["CSV-2", "AAPL", "BUY", "100", "70", "2025-11-18T14:30:00Z", "x" * (csv.field_size_limit() + 10)])
    writer.writerow(["CSV-3", "AAPL", "BUY", "100", "70", "2025-11-18T14:30:00Z", "fine"])
    path.write_text(buffer.getvalue())
    out, err = run_import(path, "csv")
    assert "imported 2, duplicates 0, conflicts 0, rejected 1" in out
    assert f"{path}:line 3: " in err and "field larger than field limit" in err
    assert stored_ids() == {"CSV-1", "CSV-3"}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_invalid_utf8_is_refused_not_replaced(tmp_path, fmt):
    path = tmp_path / f"latin1.{fmt}"
    if fmt == "jsonl":
        bad = json.dumps(good(2, reasoning="caf@")).encode().replace(b"@", b"\xe9")
        path.write_bytes(jsonl(good(1), bad, good(3)))
    else:
        header = b"signal_id,symbol,action,entry_price,confidence,timestamp,reasoning\n"
        row = b"HOSTILE-%d,MSFT,BUY,301,60,2025-11-18T14:30:00Z,%s\n"
        path.write_bytes(header + row % (1, b"ok") + row % (2, b"caf\xe9") + row % (3, b"ok"))
    out, err = run_import(path, fmt)
    assert "imported 2, duplicates 0, conflicts 0, rejected 1" in out
    line = 2 if fmt == "jsonl" else 3
    assert f"{path}:line {line}: " in err and "not valid utf-8" in err.lower()
    assert stored_ids() == {"HOSTILE-1", "HOSTILE-3"}
    assert not Signal.objects.filter(reasoning__contains="\ufffd").exists()


def test_a_utf8_bom_on_the_first_line_is_not_a_refusal(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl(good(1), good(2)).replace(b"\n", b"\r\n"))
    out, _ = run_import(path, "jsonl")
    assert "imported 2, duplicates 0, conflicts 0, rejected 0" in out


def test_each_refused_record_is_printed_with_its_file_line_and_reason(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(jsonl(good(1), b"{not json", good(2, action="HOLD"), b"", good(3, confidence=150), good(4)))
    out, err = run_import(path, "jsonl", "--json")
    summary = json.loads(out)
    assert (summary["read"], summary["imported"], summary["rejected"]) == (5, 2, 3)
    refusals = [line for line in err.splitlines() if line.startswith(f"{path}:")]
    assert [line.split(": ", 1)[0] for line in refusals] == [f"{path}:line 2", f"{path}:line 3", f"{path}:line 5"]
    assert "action" in refusals[1] and "HOLD" in refusals[1] and "confidence" in refusals[2]


def test_control_characters_and_surrogates_in_reasons_are_escaped_when_printed(tmp_path):
    path = tmp_path / "escapes.jsonl"
    path.write_bytes(jsonl(good(1, **{"\ud800\u001b[2J": 1}, action="\u001b[31mHOLD")))
    out, err = run_import(path, "jsonl")
    assert "\x1b" not in out + err and "rejected 1" in out
    assert "\\x1b[31mHOLD" in err


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "symlink to a fifo", "symlink to a directory"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "argo-sqlite"])
def test_a_path_that_is_not_a_regular_file_is_refused_without_reading(tmp_path, kind, fmt):
    target = {"fifo": tmp_path / "pipe", "device": "/dev/zero", "directory": tmp_path / "dir",
              "symlink to a fifo": tmp_path / "pipe", "symlink to a directory": tmp_path / "dir"}[kind]
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dir").mkdir()
    path = target
    if kind.startswith("symlink"):
        path = tmp_path / "link"
        path.symlink_to(target)
    # A FIFO without a writer would block an open() forever: the import must not wait for one.
    with pytest.raises(CommandError, match="not a regular file") as refused:
        call_command("import_signals", str(path), "--format", fmt)
    assert refused.value.returncode == 1


def test_a_missing_file_is_named_as_missing(tmp_path):
    with pytest.raises(CommandError, match="no such file") as refused:
        call_command("import_signals", str(tmp_path / "nope.jsonl"), "--format", "jsonl")
    assert refused.value.returncode == 1


def test_a_truncated_argo_file_is_a_clear_error_before_anything_is_imported(tmp_path):
    path = tmp_path / "argo.db"
    make_argo(path, [legacy_row(n, reasoning=f"row {n} " + "r" * 2000) for n in range(1, 400)], later_columns=True)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(CommandError, match="argo.db") as failed:
        call_command("import_signals", str(path), "--format", "argo-sqlite")
    assert failed.value.returncode == 1 and "not a readable SQLite database" in str(failed.value)
    assert not Signal.objects.exists()


def test_an_argo_file_with_a_damaged_page_stops_with_exit_code_2(tmp_path):
    path = tmp_path / "argo.db"
    make_argo(path, [legacy_row(n, reasoning=f"row {n} " + "r" * 1000) for n in range(1, 3000)], later_columns=True)
    page = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # scribble over a leaf page well inside the table
        handle.seek((size // page * 9 // 10) * page)
        handle.write(b"\xff" * page)
    with pytest.raises(CommandError, match="argo.db: the legacy file is damaged after row id") as failed:
        call_command("import_signals", str(path), "--format", "argo-sqlite")
    assert failed.value.returncode == 2
    # What came before the damage is stored and counted, so that running it again resumes.
    stored = Signal.objects.count()
    assert 1000 < stored < 2999 and f"imported {stored}, duplicates 0" in str(failed.value)


def test_argo_text_that_is_not_utf8_refuses_that_row_only(tmp_path):
    path = tmp_path / "argo.db"
    make_argo(path, [legacy_row(1), legacy_row(2), legacy_row(3)], later_columns=True)
    db = sqlite3.connect(path)
    db.execute("UPDATE signals SET reasoning = CAST(X'636166e9' AS TEXT) WHERE signal_id = ?", (f"{2:016x}",))
    db.commit()
    db.close()
    out, err = run_import(path, "argo-sqlite")
    assert "imported 2, duplicates 0, conflicts 0, rejected 1" in out
    assert "row id 2" in err and "reasoning" in err and "not valid utf-8" in err.lower()


def test_an_argo_table_without_the_required_columns_is_a_clear_error(tmp_path):
    path = tmp_path / "argo.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE signals (id INTEGER PRIMARY KEY, signal_id TEXT, symbol TEXT)")
    db.commit()
    db.close()
    with pytest.raises(CommandError, match="action") as failed:
        call_command("import_signals", str(path), "--format", "argo-sqlite")
    assert failed.value.returncode == 1


# The 200 MB line runs in a subprocess so that its peak memory can be measured on its own.
MEASURE = ("import resource, subprocess, sys\n"
           "code = subprocess.run(sys.argv[1:]).returncode\n"
           "print('MAXRSS_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
           "sys.exit(code)\n")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, databases=["default", "archive"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_200_mb_line_is_refused_in_bounded_memory_and_the_next_lines_are_imported(tmp_path, fmt):
    path = tmp_path / f"huge.{fmt}"
    huge = 200 * 1024 * 1024
    with open(path, "wb") as handle:
        if fmt == "jsonl":
            handle.write(jsonl(good(1)))
            handle.write(b'{"signal_id": "HOSTILE-2", "reasoning": "')
            handle.seek(huge, os.SEEK_CUR)  # a sparse run of NUL bytes: 200 MB read, no disk used
            handle.write(b'"}\n' + jsonl(good(3), good(4)))
        else:
            handle.write(b"signal_id,symbol,action,entry_price,confidence,timestamp,reasoning\n"
                         b"HOSTILE-1,MSFT,BUY,301,60,2025-11-18T14:30:00Z,ok\nHOSTILE-2,MSFT,BUY,301,60,2025-11-18T14:30:00Z,")
            handle.seek(huge, os.SEEK_CUR)
            handle.write(b"\nHOSTILE-3,MSFT,BUY,303,60,2025-11-18T14:30:00Z,ok\n"
                         b"HOSTILE-4,MSFT,BUY,304,60,2025-11-18T14:30:00Z,ok\n")
    assert path.stat().st_size > huge
    finished = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, str(ROOT / "manage.py"), "import_signals",
                               str(path), "--format", fmt], cwd=ROOT, env=process_env(), capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Traceback" not in finished.stderr
    line = 2 if fmt == "jsonl" else 3
    assert f"{path}:line {line}: " in finished.stderr and f"Longer than {MAX_RECORD_BYTES} bytes" in finished.stderr
    assert "imported 3, duplicates 0, conflicts 0, rejected 1" in finished.stdout
    assert stored_ids() == {"HOSTILE-1", "HOSTILE-3", "HOSTILE-4"}
    peak_mib = int(finished.stderr.rsplit("MAXRSS_KIB", 1)[1].split()[0]) / 1024
    assert peak_mib < 100, f"peak RSS {peak_mib:.0f} MiB for a {huge >> 20} MiB line"
