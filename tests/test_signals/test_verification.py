"""verify_signals: numbered checks that can each fail, and exit 0 only when none did."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.signing import SignedPackage
from django_q.status import Stat, Status

from signalhub.schedules import ensure_schedules
from signals.models import Signal
from tests.support import drop_index, store_signals

pytestmark = pytest.mark.django_db(databases=["default", "archive"])


def verify(*args):
    """Run verify_signals --json; return (exit code, {check name: check})."""
    out = StringIO()
    try:
        call_command("verify_signals", "--json", *args, stdout=out, stderr=StringIO())
        code = 0
    except CommandError as error:
        code = error.returncode
    return code, {check["name"]: check for check in json.loads(out.getvalue())["checks"]}


def report_cluster(status=Conf.IDLE, age=timedelta(0)):
    """Publish a cluster status the way a running qcluster does, ``age`` old."""
    stat = Status(pid=4242, cluster_id="test-cluster")
    stat.status, stat.timestamp = status, timezone.now() - age
    broker = get_broker()
    broker.set_stat(f"{Conf.Q_STAT}:test-cluster", SignedPackage.dumps(stat, True), 60)
    return broker


@pytest.fixture(autouse=True)
def clean_cluster_status():
    yield
    get_broker().set_stat(f"{Conf.Q_STAT}:test-cluster", "", 0)


@pytest.fixture
def healthy(journal_dir, alpine_stub):
    ensure_schedules()
    store_signals(3, created_at=timezone.now() - timedelta(minutes=5))
    report_cluster()


def test_healthy_system_passes_every_check_with_exit_0(healthy):
    out = StringIO()
    call_command("verify_signals", stdout=out, stderr=StringIO())
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == [f"{n}." for n in range(1, 10)]
    assert all(" PASS " in line for line in lines), out.getvalue()
    assert "4242" in lines[5]  # the cluster as qinfo would show it
    assert "healthy (Alpine Analytics" in lines[7]  # the stub's health endpoint answered


def test_no_running_cluster_fails_with_exit_1(healthy):
    get_broker().set_stat(f"{Conf.Q_STAT}:test-cluster", "", 0)
    assert Stat.get_all() == []
    code, checks = verify()
    assert code == 1
    assert checks["django-q2 cluster running"]["status"] == "FAIL"
    assert "start manage.py qcluster" in checks["django-q2 cluster running"]["reason"]


def test_a_stale_cluster_status_fails(healthy):
    report_cluster(age=timedelta(minutes=5))
    code, checks = verify()
    assert code == 1
    check = checks["django-q2 cluster running"]
    assert check["status"] == "FAIL" and "last report 300 s ago" in check["reason"]


def test_a_missing_or_broken_schedule_fails(healthy):
    Schedule.objects.filter(name="signalhub.monitor_snapshot").delete()
    Schedule.objects.filter(name="signalhub.archive_signals").update(func="signals.tasks.no_such_task")
    code, checks = verify()
    reason = checks["every expected schedule present, enabled and importable"]["reason"]
    assert code == 1
    assert "signalhub.monitor_snapshot is missing" in reason
    assert "signalhub.archive_signals runs signals.tasks.no_such_task" in reason


def test_a_disabled_schedule_fails(healthy):
    Schedule.objects.filter(name="signalhub.expire_open_signals").update(repeats=0)
    code, checks = verify()
    assert code == 1
    assert "signalhub.expire_open_signals is disabled" in checks[
        "every expected schedule present, enabled and importable"]["reason"]


def test_archiving_switched_off_is_a_warning_not_a_failure(healthy, settings):
    settings.SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED = False
    code, checks = verify()
    assert code == 0
    assert checks["every expected schedule present, enabled and importable"]["status"] == "WARN"


def test_a_dropped_index_fails_naming_it(healthy):
    drop_index("idx_order_id")
    code, checks = verify()
    check = checks["every declared index present (default, archive)"]
    assert code == 1 and check["status"] == "FAIL"
    assert check["details"] == ["default:signals_signal.idx_order_id"]


def test_quiet_ledger_is_a_warning(healthy):
    Signal.objects.all().delete()
    store_signals(1, created_at=timezone.now() - timedelta(hours=3))
    code, checks = verify()
    assert code == 0
    assert checks["recent activity"]["status"] == "WARN"
    assert "3.0 h old" in checks["recent activity"]["reason"]


def _tamper(signal, using="default"):
    with connections[using].cursor() as cursor:
        cursor.execute("UPDATE signals_signal SET entry_price = entry_price + 1 WHERE id = %s", [signal.pk])


def test_deep_names_every_tampered_signal_in_main_and_archive(healthy):
    first, second, _ = Signal.objects.order_by("pk")
    [archived] = store_signals(1, created_at=timezone.now() - timedelta(days=900), using="archive")
    _tamper(first)
    _tamper(archived, using="archive")

    code, checks = verify("--deep")

    check = checks["every stored signal matches its verification hash"]
    assert code == 1 and check["status"] == "FAIL"
    assert check["details"] == [f"default:{first.signal_id} (pk {first.pk})", f"archive:{archived.signal_id} (pk {archived.pk})"]
    assert second.signal_id not in check["reason"]


def test_deep_passes_on_untouched_rows(healthy):
    code, checks = verify("--deep")
    assert code == 0
    assert checks["every stored signal matches its verification hash"]["reason"] == "3 signals checked"


