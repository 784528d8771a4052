"""monitor_signals: figures, problems by severity, and Nagios exit codes."""

import json
from datetime import timedelta

import pytest
from django.db import connection

from signalhub import reports
from signals.models import Signal
from signals.operations import monitoring
from tests.support import drop_index, store_signals
from tests.test_signals.monitor_support import NOW, monitor

pytestmark = [pytest.mark.django_db(databases=["default", "archive"]), pytest.mark.usefixtures("frozen_clock")]


@pytest.fixture(autouse=True)
def isolated(journal_dir, sync_off):
    """An empty journal of this test's own, and sync off (information only), whatever the environment says."""


def flowing(count=30):
    """Signals over the last hour, a steady flow."""
    return store_signals(count, created_at=NOW - timedelta(minutes=59), step=timedelta(seconds=100), symbol="AAPL")


def test_healthy_flow_is_ok_with_exit_0():
    flowing()
    store_signals(5, created_at=NOW - timedelta(days=3), symbol="MSFT")

    code, output = monitor()

    assert code == 0
    assert output.startswith("SIGNALHUB OK - 30 signals in the last hour")
    assert "total in main: 35 (exact)" in output
    declared = sum(len(names) for names in monitoring.declared_indexes().values())
    assert f"{declared} of {declared} declared indexes present" in output
    assert "top symbols (24 h): AAPL 30" in output


def test_json_report_has_the_sections_and_figures():
    flowing()
    Signal.objects.filter(pk=Signal.objects.order_by("pk").first().pk).update(outcome="win")

    code, output = monitor("--json")
    report = json.loads(output)

    assert code == 0 and report["status"] == "OK" and report["problems"] == []
    assert set(report["sections"]) == {"storage", "signals", "write_path", "sync", "indexes"}
    signals = report["sections"]["signals"]
    assert signals["last_hour"] == 30 and signals["last_24h"] == 30
    assert signals["outcomes_7d"] == {"open": 29, "win": 1}
    assert signals["open_total"] == 29
    assert signals["average_confidence_24h"] == 80.0
    assert signals["per_day"][-1] == {"date": "2026-11-20", "signals": 30}
    assert signals["latest"]["age_seconds"] == pytest.approx(59 * 60 - 29 * 100, abs=1)
    assert report["sections"]["storage"]["engine"] == connection.vendor
    assert report["sections"]["storage"]["archive"]["signals"] == 0


def test_no_signal_in_the_last_hour_is_a_warning_exit_1():
    store_signals(3, created_at=NOW - timedelta(hours=5))
    code, output = monitor()
    assert code == 1
    assert output.startswith("SIGNALHUB WARNING - WARNING: no signal in the last hour (latest 5.0 h ago)")


def test_few_signals_in_the_last_hour_is_a_warning(settings):
    settings.SIGNALHUB_MONITOR_MIN_SIGNALS_LAST_HOUR = 50
    flowing(30)
    code, output = monitor()
    assert code == 1 and "only 30 signals in the last hour (fewer than 50)" in output


def test_thresholds_come_from_settings(settings):
    settings.SIGNALHUB_MONITOR_MAX_MAIN_SIGNALS = 10
    settings.SIGNALHUB_MONITOR_DB_MAX_MB = 0
    flowing(30)

    report = reports.gather_report()

    codes = {problem.code: problem for problem in report.problems}
    assert set(codes) == {"main_table_large", "db_size"}
    assert "over 10): consider archive_signals" in codes["main_table_large"].text
    assert report.exit_code == 1


def test_a_dropped_index_is_critical_exit_2():
    flowing()
    drop_index("idx_symbol_created")

    code, output = monitor()

    assert code == 2
    assert output.startswith("SIGNALHUB CRITICAL")
    assert "index idx_symbol_created is missing on signals_signal" in output
    assert "MISSING signals_signal.idx_symbol_created" in output


def test_total_beyond_the_exact_bound_is_an_estimate_and_says_so():
    flowing(30)
    count, how = monitoring.count_signals(exact_up_to=10)
    assert how.startswith("estimate")
    assert count >= 10  # never below what was counted exactly
    assert monitoring.count_signals(exact_up_to=100) == (30, "exact")


def test_watch_repeats_the_report():
    flowing()
    code, output = monitor("--watch", "0.01", "--times", "2")
    assert code == 0 and output.count("SIGNALHUB OK") == 2


def test_recent_counts_can_use_the_created_at_index():
    query = Signal.objects.filter(created_at__gte=NOW - timedelta(hours=1)).values("pk").query
    sql, params = query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # On a tiny test table the planner prefers a scan; forbid it to see that the index serves.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN SELECT COUNT(*) FROM ({sql}) AS recent", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN SELECT COUNT(*) FROM ({sql})", params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    # Either index that leads with created_at serves the range (the planner picks the narrower).
    assert "idx_created_outcome" in plan or "idx_created_id" in plan
