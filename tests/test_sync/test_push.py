"""The push path through a real django-q2 cluster: delivered right after the batch commits."""

import pytest
from django.db import transaction
from django_q.models import Schedule

from sync.models import Delivery
from sync.outbox import enqueue_deliveries
from tests.factories import make_signal
from tests.support import process_env, start_manage, stop_group, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_push_delivers_through_the_cluster_without_the_schedule(alpine_stub, settings):
    Schedule.objects.all().delete()  # only the push can deliver here
    settings.SIGNALHUB_SYNC_PUSH = True
    cluster = start_manage("qcluster", env=process_env(alpine=alpine_stub, SIGNALHUB_SYNC_PUSH=1, SIGNALHUB_Q_WORKERS=1))
    try:
        with transaction.atomic():
            signals = [make_signal() for _ in range(5)]
            enqueue_deliveries([s.signal_id for s in signals])
        wait_for(lambda: Delivery.objects.filter(state="delivered").count() >= 5, timeout=60, interval=0.2)
    finally:
        output = stop_group(cluster)
    assert Delivery.objects.filter(state="delivered").count() == 5, output[-2000:]
    assert {row["external_signal_id"] for row in alpine_stub.state.stored_rows()} == {s.signal_id for s in signals}
