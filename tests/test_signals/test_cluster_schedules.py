"""Every schedule runs end to end through a real ``manage.py qcluster``, with the ORM broker and with Redis.

The schedules are made due, the cluster's scheduler (about every 30 s) turns
them into tasks, its workers run them against the test databases, and the
results land in django_q's Success/Failure tables. The Redis run fails, never
skips, when Redis cannot be reached: CI must run both.
"""

import json
import os
import signal
import subprocess
from datetime import timedelta

import pytest
import redis
from django.utils import timezone
from django_q.models import Failure, Schedule, Success

from signalhub.schedules import all_specs, ensure_schedules
from tests.support import backend_name, manage, process_env, wait_for, wait_for_backends_gone

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, databases=["default", "archive"])]

REDIS_URL = os.environ.get("SIGNALHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The scheduler runs 30 s after the cluster starts; allow for a loaded machine.
WAIT_SECONDS = 150


def _broker_env(broker):
    if broker == "orm":
        return {"SIGNALHUB_REDIS_URL": ""}
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); the Redis broker run cannot be skipped")
    return {"SIGNALHUB_REDIS_URL": REDIS_URL}


def _stop(cluster):
    """Stop the cluster and every process it started (it runs in a process group of its own)."""
    if cluster.poll() is None:
        cluster.send_signal(signal.SIGTERM)  # qcluster stops its sentinel and workers itself
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(cluster.pid, signal.SIGKILL)  # workers a slow shutdown left behind
    except ProcessLookupError:
        pass
    cluster.wait()


def _have_results(names):
    # A scheduled task's group is its schedule's name.
    done = set(Success.objects.filter(group__in=names).values_list("group", flat=True))
    done |= set(Failure.objects.filter(group__in=names).values_list("group", flat=True))
    return done == set(names)


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_every_schedule_runs_through_a_real_cluster(broker, tmp_path):
    ensure_schedules()
    names = [spec.name for spec in all_specs()]
    # A cluster (and queue) of its own, so no other cluster on this machine takes the tasks.
    # The flush and delivery tasks repeat for a minute by default; an interval of
    # a minute makes each run one pass, so every schedule is done within the wait.
    name = backend_name(f"cluster-{broker}")
    env = process_env(PGAPPNAME=name, SIGNALHUB_Q_CLUSTER_NAME=f"signalhub-test-{broker}-{os.getpid()}",
                      SIGNALHUB_Q_WORKERS="2", SIGNALHUB_FLUSH_INTERVAL="60", SIGNALHUB_SYNC_INTERVAL="60",
                      **_broker_env(broker))
    Schedule.objects.filter(name__in=names).update(next_run=timezone.now() - timedelta(minutes=1))
    log = (tmp_path / "qcluster.log").open("w+")
    cluster = manage("qcluster", env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: cluster.poll() is not None or _have_results(names), timeout=WAIT_SECONDS, interval=1)
        verify = manage("verify_signals", "--json", env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        checks = {check["name"]: check for check in json.loads(verify.communicate(timeout=120)[0])["checks"]}
    finally:
        _stop(cluster)
        # Workers a slow shutdown left behind were SIGKILLed: let what they had sent commit before reading results.
        wait_for_backends_gone(name)
        log.seek(0)
        output = log.read()

    results = {name: Failure.objects.filter(group=name).first() or Success.objects.filter(group=name).first()
               for name in names}
    missing = [name for name, task in results.items() if task is None]
    assert not missing, f"no result for {missing} within {WAIT_SECONDS} s; cluster output:\n{output[-3000:]}"
    failed = {name: task.result for name, task in results.items() if not task.success}
    assert not failed, f"failed tasks: {failed}"
    assert results["signalhub.monitor_snapshot"].result in ("OK", "WARNING", "CRITICAL")
    assert results["signalhub.archive_signals"].result.startswith("archive_signals: moved 0 signals")
    # While it ran, verify_signals saw it the way manage.py qinfo does.
    assert checks["django-q2 cluster running"]["status"] == "PASS", checks["django-q2 cluster running"]
