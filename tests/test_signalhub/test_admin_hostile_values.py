"""Values in an admin URL that a database cannot take are a 400, never a 500, for a view-only user.

PostgreSQL refuses a NUL in any text parameter (a DataError, so a 500), and
SQLite refuses a search of thousands of words ("Expression tree is too
large"). Every admin refuses a NUL in any query key or value with a 400,
searches at most ``SEARCH_WORDS_MAX`` words (saying so), and the CSV export
refuses, in plain text naming the parameter, what the list refuses, instead
of exporting the whole ledger.
"""

import pytest
from django.contrib.messages import get_messages

from signalhub.admin_mixins import SEARCH_WORDS_MAX
from tests.factories import make_signal

pytestmark = pytest.mark.django_db(databases=["default", "archive"])

EXPORT = "/admin/signals/signal/export/"
# Every admin's list, with the filter parameters it declares (a NUL in each is refused).
LISTS = {
    "/admin/signals/signal/": ["action", "outcome", "asset_type", "confidence", "created", "q"],
    "/admin/signals/archivedsignal/": ["action__exact", "outcome__exact", "q"],
    "/admin/signals/signalconflict/": ["q"],
    "/admin/signals/quarantinedrecord/": ["q"],
    "/admin/sync/delivery/": ["state", "error_class", "last_status_code__exact", "age", "q"],
    "/admin/sync/destination/": ["q"],
}
# The lists whose search splits the term into words (Django's own search).
WORD_SEARCHES = ["/admin/signals/archivedsignal/", "/admin/signals/signalconflict/",
                 "/admin/signals/quarantinedrecord/", "/admin/sync/delivery/"]
AUTOCOMPLETE = "/admin/autocomplete/"


@pytest.mark.parametrize("url, parameter", [(url, parameter) for url, parameters in LISTS.items()
                                            for parameter in parameters])
def test_a_nul_in_a_filter_or_search_value_is_a_400(viewer, rows, url, parameter):
    response = viewer.get(url, {parameter: "a\x00b"})

    assert response.status_code == 400


@pytest.mark.parametrize("url", list(LISTS))
def test_a_nul_in_a_query_key_is_a_400(viewer, rows, url):
    assert viewer.get(url, {"state\x00": "dead"}).status_code == 400


@pytest.mark.parametrize("query", [
    {"app_label": "sync", "model_name": "delivery", "field_name": "signal", "term": "a\x00b"},
    {"app_label": "sync", "model_name": "delivery", "field_name": "signal", "term": "a", "page": "1\x00"},
])
def test_a_nul_in_an_autocomplete_request_is_a_400(viewer, rows, query):
    assert viewer.get(AUTOCOMPLETE, query).status_code == 400


def test_autocomplete_still_finds_a_signal(viewer, rows):
    response = viewer.get(AUTOCOMPLETE, {"app_label": "sync", "model_name": "delivery", "field_name": "signal",
                                         "term": rows.signal_id})

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [str(rows.pk)]


@pytest.mark.parametrize("url", WORD_SEARCHES)
def test_a_search_of_thousands_of_words_is_capped_and_says_so(viewer, rows, url):
    response = viewer.get(url, {"q": " ".join(["a"] * 3_000)})

    assert response.status_code == 200
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert shown == [f"Searched for the first {SEARCH_WORDS_MAX} words only: 3000 were given."]


def test_a_search_of_a_few_words_still_finds_its_rows(viewer, rows):
    response = viewer.get("/admin/signals/quarantinedrecord/", {"q": "checksum mismatch"})

    assert response.status_code == 200
    assert [row.reason for row in response.context["cl"].result_list] == ["checksum mismatch"]
    assert not list(get_messages(response.wsgi_request))


# The CSV export ------------------------------------------------------------------------------

@pytest.mark.parametrize("parameter", ["created", "confidence", "action", "outcome", "asset_type", "q"])
def test_export_refuses_a_nul_in_a_filter_or_search_naming_the_parameter(operator, rows, parameter):
    response = operator.get(EXPORT, {parameter: "\x00"})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == f"Cannot export: the value of '{parameter}' holds a NUL character."


def test_export_refuses_a_nul_in_a_query_key_without_echoing_it(operator, rows):
    response = operator.get(EXPORT, {"created\x00<b>": "today"})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "<b>" not in response.content.decode() and "\x00" not in response.content.decode()


def test_export_with_valid_filters_still_exports_the_filtered_rows(operator, rows):
    other = make_signal(symbol="NVDA", action="SELL")
    response = operator.get(EXPORT, {"action": "SELL", "q": "NVDA"})

    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert other.signal_id in body and rows.signal_id not in body
