"""What a hand-written admin URL can make the admin do: only declared filters, no reflected text, no 500.

The suite runs with DEBUG off, so a 400 here is Django's plain "Bad Request"
page and a 500 would be its server error page.
"""

import pytest

from sync.models import Delivery
from sync.outbox import enqueue_deliveries
from tests.factories import make_signal

pytestmark = pytest.mark.django_db(databases=["default", "archive"])

SCRIPT = "<script>alert(1)</script>"
EXPORT = "/admin/signals/signal/export/"

# (changelist, lookups it must refuse: a regular expression on a text column,
# a field reached through a relation, a lookup on a field that is not a filter).
DISALLOWED = {
    "/admin/signals/signal/": ["reasoning__regex", "delivery__state", "strategy", "confidence__gte"],
    "/admin/signals/archivedsignal/": ["reasoning__regex", "delivery__last_error", "symbol__startswith"],
    "/admin/signals/signalconflict/": ["signal_id__regex", "stored__contains"],
    "/admin/signals/quarantinedrecord/": ["raw__regex", "reason__icontains"],
    "/admin/sync/delivery/": ["last_error__regex", "signal__reasoning__regex", "signal__symbol", "state__regex",
                              "lease_owner"],
    "/admin/sync/destination/": ["pause_reason__regex", "paused_key_fingerprint"],
}

# (changelist, query) pairs whose values are wrong for a declared filter or page parameter.
BAD_VALUES = [
    ("/admin/signals/signal/", {"created": "not-a-date"}),
    ("/admin/signals/signal/", {"confidence": "ninety"}),
    ("/admin/signals/signal/", {"outcome": SCRIPT}),
    ("/admin/signals/signal/", {"p": "last"}),
    ("/admin/signals/signal/", {"o": "999"}),
    ("/admin/signals/archivedsignal/", {"action__exact": SCRIPT}),
    ("/admin/signals/archivedsignal/", {"outcome__isnull": "maybe"}),
    ("/admin/sync/delivery/", {"last_status_code__exact": "four hundred"}),
    ("/admin/sync/delivery/", {"last_status_code__exact": "9" * 30}),
    ("/admin/sync/delivery/", {"state": SCRIPT}),
    ("/admin/sync/delivery/", {"state__isnull": "maybe"}),
    ("/admin/sync/delivery/", {"age": "forever"}),
    ("/admin/sync/delivery/", {"p": "-1"}),
]


@pytest.mark.parametrize("url,lookup", [(url, lookup) for url, lookups in DISALLOWED.items() for lookup in lookups])
def test_a_lookup_that_is_not_a_declared_filter_is_a_400(viewer, rows, url, lookup):
    response = viewer.get(url, {lookup: ".*"})

    assert response.status_code == 400


@pytest.mark.parametrize("url", list(DISALLOWED))
def test_a_hostile_query_key_is_a_400_that_echoes_nothing(viewer, rows, url):
    response = viewer.get(url, {SCRIPT: "1"})

    assert response.status_code == 400
    assert b"<script>" not in response.content


@pytest.mark.parametrize("url,query", BAD_VALUES)
def test_a_bad_value_for_a_declared_filter_is_never_a_500(viewer, rows, url, query):
    response = viewer.get(url, query, follow=True)

    assert response.status_code in (200, 400)
    assert SCRIPT.encode() not in response.content


def test_declared_filters_still_filter(viewer, rows):
    other = make_signal(symbol="NVDA")
    enqueue_deliveries([other.signal_id])
    Delivery.objects.filter(signal=other).update(state="dead", last_status_code=422, error_class="rejected")

    for query in ({"state": "dead"}, {"state__exact": "dead"}, {"last_status_code__exact": "422"},
                  {"error_class__exact": "rejected"}, {"state": "dead", "age": "1h"}):
        response = viewer.get("/admin/sync/delivery/", query)
        assert response.status_code == 200, query
        assert [row.signal.signal_id for row in response.context["cl"].result_list] == [other.signal_id], query
    listed = viewer.get("/admin/signals/signal/", {"action": "BUY", "created": "today", "q": "NVDA"})
    assert [row.signal_id for row in listed.context["cl"].result_list] == [other.signal_id]


@pytest.mark.parametrize("url", ["/admin/sync/delivery/{}/change/", "/admin/signals/signal/{}/change/",
                                 "/admin/sync/destination/{}/change/"])
@pytest.mark.parametrize("pk", ["not-a-number", "9" * 30, "-1"])
def test_a_bad_id_in_a_detail_url_is_never_a_500(viewer, rows, url, pk):
    response = viewer.get(url.format(pk))

    assert response.status_code == 302  # back to the index, saying the row does not exist


def test_a_hidden_field_cannot_be_named_as_the_to_field(viewer, rows):
    response = viewer.get("/admin/signals/signal/", {"_to_field": "reasoning"})

    assert response.status_code == 400


# The CSV export ------------------------------------------------------------------------------

def test_export_refuses_a_script_query_key_without_echoing_it(operator, rows):
    response = operator.get(EXPORT, {SCRIPT: "1"})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert "<script>" not in body and "alert" not in body
    assert body == "Cannot export: filtering by a parameter that is not a filter is not allowed."


@pytest.mark.parametrize("lookup", ["reasoning__regex", "delivery__state", "metadata__has_key"])
def test_export_refuses_an_undeclared_lookup_naming_it(operator, rows, lookup):
    response = operator.get(EXPORT, {lookup: "x"})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == f"Cannot export: filtering by '{lookup}' is not allowed."


def test_export_of_a_bad_filter_value_is_not_an_error(operator, rows):
    # A fixed-choice filter ignores a value it does not know, as the list does.
    response = operator.get(EXPORT, {"outcome": SCRIPT, "p": "2", "e": "1"})

    assert response.status_code == 200
    assert rows.signal_id in b"".join(response.streaming_content).decode()
