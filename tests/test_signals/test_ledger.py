"""The ledger is append-only: generator fields never change; only the lifecycle moves."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from signals.models import GENERATOR_FIELDS, Signal
from tests.factories import make_signal

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("field,value", [
    ("symbol", "MSFT"), ("entry_price", 1.0), ("confidence", 1.0), ("timestamp", datetime(2020, 1, 1, tzinfo=UTC)),
    ("sha256", "0" * 64), ("metadata", {"x": 1}), ("reasoning", "changed"),
])
def test_model_refuses_to_save_a_changed_generator_field(field, value):
    signal = make_signal()
    stored = getattr(signal, field)
    signal = Signal.objects.get(pk=signal.pk)
    setattr(signal, field, value)
    with pytest.raises(ValidationError) as caught:
        signal.save()
    assert field in caught.value.message_dict
    assert getattr(Signal.objects.get(pk=signal.pk), field) == stored


def test_queryset_update_refuses_generator_fields():
    signal = make_signal()
    with pytest.raises(ValidationError) as caught:
        Signal.objects.filter(pk=signal.pk).update(entry_price=5.0, outcome="win")
    assert list(caught.value.message_dict) == ["entry_price"]
    assert Signal.objects.get(pk=signal.pk).entry_price == 100.0


def test_save_writes_only_the_lifecycle():
    signal = Signal.objects.get(pk=make_signal().pk)
    signal.outcome = "expired"
    signal.save()
    assert Signal.objects.get(pk=signal.pk).outcome == "expired"


def test_every_generator_field_exists_on_the_model():
    names = {field.name for field in Signal._meta.get_fields()}
    assert set(GENERATOR_FIELDS) <= names


@pytest.mark.parametrize("action,entry,target,stop,exit_price,pnl,outcome", [
    ("BUY", 100, 110, 95, 110, 10.0, "win"),      # at target
    ("BUY", 100, 110, 95, 120, 20.0, "win"),      # beyond target
    ("BUY", 100, 110, 95, 95, -5.0, "loss"),      # at stop
    ("BUY", 100, 110, 95, 90, -10.0, "loss"),     # beyond stop
    ("BUY", 100, 110, 95, 102, 2.0, "expired"),   # in between
    ("SELL", 100, 90, 105, 90, 10.0, "win"),
    ("SELL", 100, 90, 105, 105, -5.0, "loss"),
    ("SELL", 100, 90, 105, 98, 2.0, "expired"),
    ("BUY", 100, None, None, 101, 1.0, "win"),    # no target/stop: the sign of P&L decides
    ("BUY", 100, None, None, 99, -1.0, "loss"),
    ("SELL", 100, None, None, 99, 1.0, "win"),
    ("SELL", 100, None, None, 100, 0.0, "expired"),
    ("BUY", 100, 110, None, 97, -3.0, "loss"),   # no stop: a loss below entry
    ("SELL", 100, None, 105, 98, 2.0, "win"),    # no target: a gain is a win
])
def test_closing_computes_pnl_and_outcome_by_the_legacy_rules(action, entry, target, stop, exit_price, pnl, outcome):
    signal = make_signal(action=action, entry_price=entry, target_price=target, stop_price=stop)
    signal.close(exit_price, datetime(2025, 11, 20, tzinfo=UTC))
    row = Signal.objects.get(pk=signal.pk)
    assert row.outcome == outcome
    assert row.profit_loss_pct == pytest.approx(pnl)
    assert row.exit_price == exit_price


def test_closing_twice_is_refused():
    signal = make_signal()
    signal.close(111.0)
    with pytest.raises(ValidationError) as caught:
        Signal.objects.get(pk=signal.pk).close(90.0)
    assert "already closed" in caught.value.message_dict["outcome"][0]
    assert Signal.objects.get(pk=signal.pk).exit_price == 111.0


@pytest.mark.parametrize("price", [0, -1, float("nan"), float("inf"), True, "100"])
def test_closing_refuses_a_bad_exit_price(price):
    signal = make_signal()
    with pytest.raises(ValidationError) as caught:
        signal.close(price)
    assert "exit_price" in caught.value.message_dict
    assert Signal.objects.get(pk=signal.pk).outcome is None


def test_recording_an_execution_once():
    signal = make_signal()
    signal.record_execution("ORD-1", "executor-a")
    signal.record_execution("ORD-1", "executor-a")  # the same again is harmless
    with pytest.raises(ValidationError) as caught:
        Signal.objects.get(pk=signal.pk).record_execution("ORD-2")
    assert "ORD-1" in caught.value.message_dict["order_id"][0]
    row = Signal.objects.get(pk=signal.pk)
    assert (row.order_id, row.executor_id) == ("ORD-1", "executor-a")


def test_recording_an_execution_refuses_blank_order_id():
    signal = make_signal()
    with pytest.raises(ValidationError) as caught:
        signal.record_execution("  ")
    assert "order_id" in caught.value.message_dict


def test_expiry_marks_only_old_open_signals(settings):
    settings.SIGNALHUB_EXPIRE_AFTER_DAYS = 30
    now = datetime(2026, 1, 31, tzinfo=UTC)
    old_open = make_signal(timestamp=now - timedelta(days=31))
    young_open = make_signal(timestamp=now - timedelta(days=29))
    old_closed = make_signal(timestamp=now - timedelta(days=40))
    old_closed.close(111.0, now - timedelta(days=39))
    assert Signal.objects.expire_open(now=now, batch_size=1) == 1
    assert Signal.objects.get(pk=old_open.pk).outcome == "expired"
    assert Signal.objects.get(pk=young_open.pk).outcome is None
    assert Signal.objects.get(pk=old_closed.pk).outcome == "win"
