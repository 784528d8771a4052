"""The sync commands' output and exit codes, against the stub."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from sync.models import Delivery, DeliveryAttempt
from sync.outbox import enqueue_deliveries
from tests.factories import make_signal
from tests.support import ALPINE_STUB_KEY

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def queue(n, **overrides):
    signals = [make_signal(**overrides) for _ in range(n)]
    enqueue_deliveries([s.signal_id for s in signals])
    return signals


def test_sync_signals_one_pass_reports_counts(alpine_stub, settings):
    settings.SIGNALHUB_SYNC_BATCH_SIZE = 3
    queue(5)
    out = run("sync_signals")
    assert "claimed 3: delivered 3" in out and "pending 2" in out
    assert Delivery.objects.filter(state="delivered").count() == 3


def test_sync_signals_drain_waits_out_backoff_until_done(alpine_stub, settings):
    settings.SIGNALHUB_SYNC_BACKOFF_BASE = settings.SIGNALHUB_SYNC_BACKOFF_CAP = 0.05
    alpine_stub.faults.error_rate = 0.3
    queue(20)
    data = json.loads(run("sync_signals", "--drain", "--max-seconds", "60", "--json"))
    assert data["delivered"] == 20 and data["counts"]["delivered"] == 20
    assert data["errors"].get("server_error", 0) >= 1


def test_sync_signals_drain_stopped_early_exits_3(alpine_stub, settings):
    settings.SIGNALHUB_SYNC_BACKOFF_BASE = settings.SIGNALHUB_SYNC_BACKOFF_CAP = 600
    alpine_stub.faults.error_rate = 1.0
    settings.SIGNALHUB_SYNC_PAUSE_AFTER_FAILURES = 1000
    queue(2)
    with pytest.raises(CommandError) as excinfo:
        run("sync_signals", "--drain", "--max-seconds", "0.5")
    assert excinfo.value.returncode == 3


def test_sync_signals_paused_exits_2_and_says_why(alpine_stub, monkeypatch):
    monkeypatch.setenv("ARGO_API_KEY", "wrong-wrong-wrong-wrong")
    queue(1)
    with pytest.raises(CommandError, match="paused until .*Invalid API key") as excinfo:
        run("sync_signals")
    assert excinfo.value.returncode == 2


def test_sync_signals_with_sync_off_says_so_and_exits_0(alpine_stub, monkeypatch):
    monkeypatch.setenv("ALPINE_SYNC_ENABLED", "0")
    queue(1)
    out = run("sync_signals", "--drain")
    assert "sync off: ALPINE_SYNC_ENABLED is false" in out and "pending 1" in out


def test_test_alpine_sync_passes_without_storing_anything(alpine_stub):
    out = run("test_alpine_sync")
    assert "PASS  health" in out and "PASS  key: accepted" in out and "Alpine does check keys" in out
    assert "SKIP  test signal" in out and "all checks passed" in out
    assert ALPINE_STUB_KEY not in out and "st****ef" in out and "[environment]" in out
    assert not alpine_stub.state.stored


def test_test_alpine_sync_wrong_key_fails_with_exit_1(alpine_stub, monkeypatch):
    monkeypatch.setenv("ARGO_API_KEY", "not-the-key-not-the-key")
    with pytest.raises(CommandError) as excinfo:
        call_command("test_alpine_sync", stdout=(out := StringIO()))
    assert excinfo.value.returncode == 1
    assert "FAIL  key: Alpine refused the key (401: Invalid API key)" in out.getvalue()


def test_test_alpine_sync_notices_an_alpine_without_keys(alpine_stub):
    alpine_stub.state.key = None
    out = run("test_alpine_sync")
    assert "development mode" in out


def test_test_alpine_sync_unreachable_fails(alpine_stub, monkeypatch):
    alpine_stub.stop()
    with pytest.raises(CommandError):
        call_command("test_alpine_sync", stdout=(out := StringIO()))
    assert "FAIL  health: cannot reach" in out.getvalue()


def test_test_alpine_sync_sends_a_marked_test_signal_only_when_asked(alpine_stub):
    out = run("test_alpine_sync", "--send-test-signal")
    assert "PASS  test signal: 201 success" in out
    [row] = alpine_stub.state.stored_rows()
    assert row["external_signal_id"].startswith("signalhub-connection-test-")
    assert row["strategy"] == "signalhub_connection_test"
    assert DeliveryAttempt.objects.get().trigger == "test"


def test_resync_signals_queues_delivered_rows_again_by_period_and_symbol(alpine_stub):
    old = queue(2, symbol="MSFT")
    new = queue(2, symbol="AAPL")
    run("sync_signals")
    since = (timezone.now() - timedelta(minutes=5)).isoformat()
    assert "would queue 2" in run("resync_signals", "--since", since, "--symbol", "aapl", "--dry-run")
    assert "queued 2 signals" in run("resync_signals", "--since", since, "--symbol", "AAPL")
    assert set(Delivery.objects.filter(state="pending").values_list("signal__symbol", flat=True)) == {"AAPL"}
    run("sync_signals")
    assert Delivery.objects.filter(state="delivered").count() == 4 and len(alpine_stub.state.stored) == 4
    assert len(old) == len(new) == 2
    with pytest.raises(CommandError, match="--since"):
        run("resync_signals", "--since", "yesterday")


def test_drain_stops_at_once_on_a_refused_key(alpine_stub, monkeypatch):
    monkeypatch.setenv("ARGO_API_KEY", "wrong-wrong-wrong-wrong")
    queue(2)
    with pytest.raises(CommandError, match="Invalid API key") as excinfo:
        run("sync_signals", "--drain")
    assert excinfo.value.returncode == 2
    assert Delivery.objects.filter(state="pending", attempt_count=0).count() == 2
