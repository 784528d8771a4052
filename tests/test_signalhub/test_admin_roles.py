"""Who may see and do what in the admin: staff without permissions, viewers, operators, superusers.

Every page and action is tried for each role, including POSTs written by hand
that skip the form; a refusal must change nothing in the database.
"""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone
from django_q.models import OrmQ

from signalhub import roles
from signals.models import QuarantinedRecord, SignalConflict
from sync.models import Delivery, DeliveryAttempt, Destination
from sync.outbox import enqueue_deliveries
from tests.factories import make_signal
from tests.support import store_signals, utc

pytestmark = pytest.mark.django_db(databases=["default", "archive"])

ROLES = ("no_permissions", "viewer", "operator", "superuser")
MAY_VIEW = {"viewer", "operator", "superuser"}
MAY_OPERATE = {"operator", "superuser"}
REASONING = "Breakout above the 50-day average on twice the usual volume"
DELIVERIES = "/admin/sync/delivery/"
DESTINATIONS = "/admin/sync/destination/"
RETRY_DEAD = "/admin/sync/delivery/retry-dead/"
EXPORT = "/admin/signals/signal/export/"


@pytest.fixture
def rows(alpine_stub):
    # A real Alpine on loopback: a retry that slipped through would really deliver.
    signal = make_signal(symbol="MSFT", reasoning=REASONING)
    dead_signal = make_signal(symbol="NVDA")
    enqueue_deliveries([signal.signal_id, dead_signal.signal_id])
    pending = Delivery.objects.get(signal=signal)
    dead = Delivery.objects.get(signal=dead_signal)
    Delivery.objects.filter(pk=dead.pk).update(state="dead", attempt_count=5, last_attempt_at=timezone.now(),
                                               last_error="rationale too short")
    destination = Destination.objects.alpine()
    destination.pause(3600, "too many failures")
    [archived] = store_signals(1, created_at=utc(2024, 1, 1), using="archive", symbol="ARCH")
    conflict = SignalConflict.objects.create(signal_id="SIG-1", stored={"entry_price": 1.0},
                                             incoming={"entry_price": 2.0}, incoming_digest="d" * 64, source="seg@0")
    record = QuarantinedRecord.objects.create(reason="checksum mismatch", raw="garbage", source="seg@10",
                                              fingerprint="f" * 64)
    return {"signal": signal, "pending": pending, "dead": dead, "destination": destination, "archived": archived,
            "conflict": conflict, "record": record}


def login(client, role):
    roles.ensure_roles()
    if role == "superuser":
        user = User.objects.create_superuser(role, password="not-used")
    else:
        user = User.objects.create_user(role, password="not-used", is_staff=True)
        group = {"viewer": roles.VIEWERS, "operator": roles.OPERATORS}.get(role)
        if group:
            user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def pages(rows):
    """Every SignalHub admin page: (url, text it shows a permitted user)."""
    return [
        ("/admin/signals/signal/", rows["signal"].signal_id),
        (f"/admin/signals/signal/{rows['signal'].pk}/change/", REASONING),
        ("/admin/signals/archivedsignal/", rows["archived"].signal_id),
        (f"/admin/signals/archivedsignal/{rows['archived'].pk}/change/", rows["archived"].signal_id),
        ("/admin/signals/signalconflict/", "SIG-1"),
        (f"/admin/signals/signalconflict/{rows['conflict'].pk}/change/", "SIG-1"),
        ("/admin/signals/quarantinedrecord/", "seg@10"),
        (f"/admin/signals/quarantinedrecord/{rows['record'].pk}/change/", "garbage"),
        (DELIVERIES, rows["signal"].signal_id),
        (f"{DELIVERIES}{rows['pending'].pk}/change/", REASONING),
        (DESTINATIONS, "too many failures"),
        (f"/admin/signals/signal/{rows['signal'].pk}/history/", "Change history"),
        (f"{DELIVERIES}{rows['pending'].pk}/history/", "Change history"),
        (f"{DESTINATIONS}{rows['destination'].pk}/change/", "too many failures"),
    ]


def database_state():
    """Everything an action or a custom view could change."""
    return (list(Delivery.objects.order_by("pk").values()), list(Destination.objects.order_by("pk").values()),
            DeliveryAttempt.objects.count(), OrmQ.objects.count())


# Pages --------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_each_page_answers_by_role(client, rows, role):
    login(client, role)

    for url, shown in pages(rows):
        response = client.get(url)
        if role in MAY_VIEW:
            assert response.status_code == 200, url
            assert shown in response.content.decode(), url
        else:
            assert response.status_code == 403, url
            assert shown not in response.content.decode(), url


def test_staff_without_permissions_sees_no_model_on_the_index(client, rows):
    login(client, "no_permissions")

    page = client.get("/admin/").content.decode()

    assert DELIVERIES not in page and "/admin/signals/signal/" not in page


def test_delivery_detail_shows_the_signals_reasoning_only_to_who_may_view_signals(client, rows):
    user = User.objects.create_user("deliveries-only", password="not-used", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="sync", codename="view_delivery"))
    client.force_login(user)

    response = client.get(f"{DELIVERIES}{rows['pending'].pk}/change/")

    assert response.status_code == 200
    assert REASONING not in response.content.decode()


# Custom views ----------------------------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
def test_retry_dead_since_needs_the_operate_permission(client, rows, role):
    login(client, role)
    before = database_state()

    shown = client.get(RETRY_DEAD)
    posted = client.post(RETRY_DEAD, {"since": (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")})

    if role in MAY_OPERATE:
        assert shown.status_code == 200 and 'name="since"' in shown.content.decode()
        assert posted.status_code == 302
        assert OrmQ.objects.count() == 1
    else:
        assert (shown.status_code, posted.status_code) == (403, 403)
        assert database_state() == before


@pytest.mark.parametrize("role", ROLES)
def test_csv_export_needs_the_operate_permission(client, rows, role):
    login(client, role)

    response = client.get(EXPORT)

    if role in MAY_OPERATE:
        assert response.status_code == 200
        body = b"".join(response.streaming_content).decode()
        assert rows["signal"].signal_id in [row["signal_id"] for row in csv.DictReader(io.StringIO(body))]
    else:
        assert response.status_code == 403
        assert rows["signal"].signal_id not in response.content.decode()


@pytest.mark.parametrize("role", ROLES)
def test_lists_offer_actions_and_links_only_to_operators(client, rows, role):
    login(client, role)
    deliveries = client.get(DELIVERIES).content.decode()
    destinations = client.get(DESTINATIONS).content.decode()
    signals = client.get("/admin/signals/signal/").content.decode()

    offered = {
        "retry_now": 'value="retry_now"' in deliveries,
        "cancel": 'value="cancel_deliveries"' in deliveries,
        "resume": 'value="resume_now"' in destinations,
        "retry dead link": RETRY_DEAD in deliveries,
        "export link": EXPORT in signals,
    }
    assert offered == dict.fromkeys(offered, role in MAY_OPERATE)


# Actions -----------------------------------------------------------------------------------

def _action_posts(rows):
    """(changelist, action, selected pk) for every action SignalHub's admin has."""
    return [(DELIVERIES, "retry_now", rows["pending"].pk), (DELIVERIES, "retry_now", rows["dead"].pk),
            (DELIVERIES, "cancel_deliveries", rows["pending"].pk),
            (DESTINATIONS, "resume_now", rows["destination"].pk)]


@pytest.mark.parametrize("role", ["no_permissions", "viewer"])
@pytest.mark.parametrize("with_form_fields", [False, True], ids=["hand_made_post", "form_post"])
def test_actions_are_refused_and_change_nothing(client, rows, alpine_stub, role, with_form_fields):
    login(client, role)
    before = database_state()

    for url, action, pk in _action_posts(rows):
        data = {"action": action, "_selected_action": [pk]}
        if with_form_fields:
            data.update(index="0", select_across="0")
        response = client.post(url, data)
        assert response.status_code == 403, (url, action)

    assert database_state() == before
    assert not alpine_stub.state.posts_by_hash  # nothing reached Alpine
    assert Destination.objects.alpine().is_paused()


@pytest.mark.parametrize("role", ["operator", "superuser"])
def test_operators_run_every_action(client, rows, alpine_stub, role):
    login(client, role)
    Destination.objects.alpine().resume()  # a paused destination sends nothing

    retried = client.post(DELIVERIES, {"action": "retry_now", "_selected_action": [rows["pending"].pk], "index": "0"})
    Destination.objects.alpine().pause(3600, "too many failures")
    resumed = client.post(DESTINATIONS, {"action": "resume_now", "_selected_action": [rows["destination"].pk],
                                         "index": "0"})
    cancelled = client.post(DELIVERIES, {"action": "cancel_deliveries", "_selected_action": [rows["dead"].pk],
                                         "index": "0"})

    assert (retried.status_code, resumed.status_code, cancelled.status_code) == (302, 302, 302)
    assert Delivery.objects.get(pk=rows["pending"].pk).state == "delivered"
    assert len(alpine_stub.state.stored_rows()) == 1
    assert not Destination.objects.alpine().is_paused()
    assert Delivery.objects.get(pk=rows["dead"].pk).state == "cancelled"


def test_a_hand_made_post_of_an_unknown_action_is_refused(client, rows):
    login(client, "operator")
    before = database_state()

    response = client.post(DELIVERIES, {"action": "delete_selected", "_selected_action": [rows["pending"].pk],
                                        "post": "yes"})

    assert response.status_code == 403
    assert database_state() == before
