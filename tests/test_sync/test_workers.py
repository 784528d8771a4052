"""Real worker processes: killed mid-pass, and two at once never sending the same row."""

import signal as signals_module
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from sync.delivery import handle_one_batch
from sync.models import Delivery
from sync.outbox import enqueue_deliveries
from tests.factories import make_signal
from tests.support import backend_name, process_env, start_manage, stop_group, wait_for, wait_for_backends_gone

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def queue(n):
    signals = [make_signal() for _ in range(n)]
    enqueue_deliveries([s.signal_id for s in signals])
    return signals


def test_worker_killed_mid_pass_leaves_rows_delivered_after_the_lease(alpine_stub):
    signals = queue(10)
    # The worker is still waiting for answers when it dies. No answer comes
    # before its 60 s timeout (once 5 s, which a loaded machine could outrun
    # before the kill); the requests sleep on in the stub's daemon threads.
    alpine_stub.faults.delay_all_seconds = 600.0
    name = backend_name("worker")
    env = process_env(alpine=alpine_stub, PGAPPNAME=name, SIGNALHUB_SYNC_LEASE_SECONDS=120, ALPINE_TIMEOUT=60,
                      SIGNALHUB_SYNC_CONCURRENCY=4)
    worker = start_manage("sync_signals", env=env)
    try:
        assert wait_for(lambda: Delivery.objects.filter(state="sending").count() == 10
                        and sum(alpine_stub.state.posts_by_hash.values()) >= 4), "the worker never got going"
    finally:
        worker.send_signal(signals_module.SIGKILL)
        worker.wait(timeout=10)
    assert worker.returncode == -signals_module.SIGKILL
    wait_for_backends_gone(name)  # a write it sent before dying lands before the rows are read
    alpine_stub.faults.delay_all_seconds = 0.0
    assert set(Delivery.objects.values_list("state", flat=True)) == {"sending"}
    assert handle_one_batch() is False  # the dead worker's lease still holds
    with time_machine.travel(timezone.now() + timedelta(seconds=121)):
        assert handle_one_batch() is True
    rows = Delivery.objects.all()
    assert {row.state for row in rows} == {"delivered"}
    assert {row.attempt_count for row in rows} == {2}
    # The rows are delivered: the resent requests have been answered, so all 10 are stored already.
    assert len(alpine_stub.state.stored) == 10
    assert {row["external_signal_id"] for row in alpine_stub.state.stored_rows()} == {s.signal_id for s in signals}


def test_two_workers_never_send_the_same_row(alpine_stub):
    signals = queue(400)
    alpine_stub.faults.delay_all_seconds = 0.01
    env = process_env(alpine=alpine_stub, SIGNALHUB_SYNC_BATCH_SIZE=20, SIGNALHUB_SYNC_CONCURRENCY=4, ALPINE_TIMEOUT=5)
    workers = [start_manage("sync_signals", "--drain", "--max-seconds", "90", env=env) for _ in range(2)]
    try:
        outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                stop_group(worker)
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert Delivery.objects.filter(state="delivered").count() == 400
    assert len(alpine_stub.state.posts_by_hash) == 400
    assert max(alpine_stub.state.posts_by_hash.values()) == 1, "a row was sent twice"
    claimed = [int(out.split("claimed ")[1].split(":")[0]) for out in outputs]
    assert sum(claimed) == 400 and min(claimed) > 0, outputs
    assert {s.sha256 for s in signals} == set(alpine_stub.state.stored)
