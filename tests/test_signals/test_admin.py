"""The Signal admin as a logged-in staff member sees it: list, filters, search, detail (the export: test_admin_export)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from signals.admin import paging
from signals.models import Signal
from tests.factories import signal_data
from tests.support import ADMIN_NOW as NOW
from tests.support import admin_signal as _signal

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("admin_clock")]

LIST_URL = "/admin/signals/signal/"
EXPORT_URL = "/admin/signals/signal/export/"


def _listed(response):
    assert response.status_code == 200
    return [signal.signal_id for signal in response.context["cl"].result_list]


def _ids(*signals):
    return {signal.signal_id for signal in signals}


# The list -----------------------------------------------------------------------------

def test_list_shows_trader_columns_newest_first(staff_client, desk):
    response = staff_client.get(LIST_URL)

    assert _listed(response) == [desk[name].signal_id for name in ("new_buy", "sell_crypto", "won", "lost", "old")]
    headers = [header["text"] for header in response.context["result_headers"]]
    for column in ("time (UTC)", "symbol", "action", "entry price", "target price", "stop price",
                   "confidence", "outcome", "P&L %", "strategy"):
        assert column in headers
    html = response.content.decode()
    assert "+12.00" in html  # the won position's P&L
    assert "2026-06-15 11:00:00" in html  # the newest one's time
    assert ">open<" in html


def test_list_order_is_created_at_then_pk_descending(staff_client, desk):
    with CaptureQueriesContext(connection) as queries:
        staff_client.get(LIST_URL)

    page_query = next(q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "signals_signal"."id"'))
    assert 'ORDER BY "signals_signal"."created_at" DESC, "signals_signal"."id" DESC' in page_query


def test_columns_are_not_sortable_so_no_page_sorts_the_table(staff_client, desk):
    response = staff_client.get(LIST_URL, {"o": "6"})  # confidence, were it sortable

    assert _listed(response)[0] == desk["new_buy"].signal_id
    assert not any(header["sortable"] for header in response.context["result_headers"])


@pytest.mark.parametrize(("params", "expected"), [
    ({"action": "SELL"}, ["sell_crypto"]),
    ({"action": "BUY"}, ["new_buy", "won", "lost", "old"]),
    ({"outcome": "open"}, ["new_buy", "sell_crypto"]),
    ({"outcome": "win"}, ["won"]),
    ({"outcome": "loss"}, ["lost"]),
    ({"outcome": "expired"}, ["old"]),
    ({"asset_type": "crypto"}, ["sell_crypto"]),
    ({"asset_type": "etf"}, ["old"]),
    ({"asset_type": "stock"}, ["new_buy", "won", "lost"]),
    ({"confidence": "90"}, ["new_buy"]),
    ({"confidence": "75"}, ["sell_crypto"]),
    ({"confidence": "55"}, ["won", "old"]),
    ({"confidence": "0"}, ["lost"]),
    ({"created": "today"}, ["new_buy"]),
    ({"created": "7d"}, ["new_buy", "sell_crypto"]),
    ({"created": "30d"}, ["new_buy", "sell_crypto", "won", "lost"]),
    ({"created": "older"}, ["old"]),
    ({"action": "BUY", "outcome": "open"}, ["new_buy"]),
])
def test_each_filter_lists_exactly_its_signals(staff_client, desk, params, expected):
    response = staff_client.get(LIST_URL, params)

    assert _listed(response) == [desk[name].signal_id for name in expected]


def test_filters_offer_fixed_choices_without_select_distinct(staff_client, desk):
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(LIST_URL, {"outcome": "win"})

    assert response.status_code == 200
    sql = " ".join(q["sql"] for q in queries.captured_queries).upper()
    assert "DISTINCT" not in sql
    titles = [spec.title for spec in response.context["cl"].filter_specs]
    assert titles == ["action", "outcome", "asset type", "confidence", "stored"]
    outcome_choices = [choice["display"] for choice in response.context["cl"].filter_specs[1].choices(response.context["cl"])]
    assert outcome_choices == ["All", "Open", "Win", "Loss", "Expired"]
    assert response.context["cl"].date_hierarchy is None


def test_unknown_filter_value_lists_everything(staff_client, desk):
    response = staff_client.get(LIST_URL, {"outcome": "draw"})

    assert len(_listed(response)) == len(desk)


# Search ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("term", "expected"), [
    ("<won.signal_id>", ["won"]),
    ("ORD-777", ["won"]),
    ("BTC-USD", ["sell_crypto"]),
    ("btc-usd", ["sell_crypto"]),  # symbols are stored upper-case
    ("  NVDA ", ["lost"]),
])
def test_search_finds_exact_signal_id_order_id_or_symbol(staff_client, desk, term, expected):
    term = term.replace("<won.signal_id>", desk["won"].signal_id)

    response = staff_client.get(LIST_URL, {"q": term})

    assert _listed(response) == [desk[name].signal_id for name in expected]


@pytest.mark.parametrize("term", ["BTC", "USD", "ORD-77", "TEST-", "<won.signal_id prefix>", "momentum"])
def test_search_does_not_match_substrings(staff_client, desk, term):
    term = term.replace("<won.signal_id prefix>", desk["won"].signal_id[:-2])

    response = staff_client.get(LIST_URL, {"q": term})

    assert _listed(response) == []


def test_search_combines_with_filters(staff_client, desk):
    _signal(created_at=NOW - timedelta(days=1), symbol="BTC-USD", action="BUY", asset_type="crypto")

    response = staff_client.get(LIST_URL, {"q": "BTC-USD", "action": "SELL"})

    assert _listed(response) == [desk["sell_crypto"].signal_id]


def test_search_compares_whole_values_never_like(staff_client, desk):
    with CaptureQueriesContext(connection) as queries:
        staff_client.get(LIST_URL, {"q": "AAPL"})

    sql = " ".join(q["sql"] for q in queries.captured_queries).upper()
    assert " LIKE " not in sql
    assert "UPPER(" not in sql
    assert '"SIGNALS_SIGNAL"."SYMBOL" = ' in sql


# Counting without reading the table --------------------------------------------------------

def _analyze():
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE signals_signal")


def test_unfiltered_list_shows_an_estimate_and_issues_no_count(staff_client, desk, monkeypatch):
    monkeypatch.setattr(paging.BoundedCountPaginator, "count_limit", 3)
    _analyze()

    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(LIST_URL)

    assert response.status_code == 200
    signal_queries = [q["sql"] for q in queries.captured_queries if "signals_signal" in q["sql"]]
    assert not any("COUNT(" in sql.upper() for sql in signal_queries)
    paginator = response.context["cl"].paginator
    assert paginator.count_is_estimate
    assert paginator.count == len(desk)
    assert f"about {len(desk)} signals" in response.content.decode()
    assert response.context["cl"].full_result_count is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_class statistics exist on PostgreSQL only")
def test_postgresql_estimate_comes_from_planner_statistics(staff_client, desk, monkeypatch):
    monkeypatch.setattr(paging.BoundedCountPaginator, "count_limit", 3)
    _analyze()

    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(LIST_URL)

    assert any("reltuples" in q["sql"] for q in queries.captured_queries)
    assert response.context["cl"].paginator.count == len(desk)


def test_never_analyzed_table_falls_back_to_a_capped_count(staff_client, desk, monkeypatch):
    monkeypatch.setattr(paging.BoundedCountPaginator, "count_limit", 3)
    monkeypatch.setattr(paging, "estimated_row_count", lambda model, using: None)

    response = staff_client.get(LIST_URL)

    assert response.context["cl"].paginator.count_is_capped
    assert "more than 3 signals" in response.content.decode()


def test_filtered_count_stops_at_the_limit(staff_client, desk, monkeypatch):
    monkeypatch.setattr(paging.BoundedCountPaginator, "count_limit", 2)

    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(LIST_URL, {"action": "BUY"})

    count_sql = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(count_sql) == 1 and "LIMIT 3" in count_sql[0]
    assert "more than 2 signals" in response.content.decode()
    assert response.context["cl"].paginator.num_pages == 1


def test_small_filtered_list_is_counted_exactly(staff_client, desk):
    response = staff_client.get(LIST_URL, {"action": "BUY"})

    assert response.context["cl"].result_count == 4
    assert "4 signals" in response.content.decode()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite plans do not depend on table statistics")
@pytest.mark.parametrize("params", [{}, {"outcome": "win"}, {"created": "7d"}, {"q": "AAPL"}, {"q": "ORD-777"}])
def test_sqlite_serves_every_page_query_from_an_index_without_sorting(staff_client, desk, monkeypatch, params):
    # A low limit so the unfiltered list takes the estimate path, as a large table does.
    monkeypatch.setattr(paging.BoundedCountPaginator, "count_limit", 3)
    with CaptureQueriesContext(connection) as queries:
        staff_client.get(LIST_URL, params)

    plans = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            if "signals_signal" in query["sql"] and query["sql"].startswith("SELECT"):
                cursor.execute("EXPLAIN QUERY PLAN " + query["sql"])
                plans.append(" / ".join(row[3] for row in cursor.fetchall()))
    assert plans
    for plan in plans:
        assert "TEMP B-TREE" not in plan, plan
        assert "SCAN signals_signal /" not in plan + " /", plan  # a scan, if any, is of an index


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite estimate")
def test_sqlite_estimate_seeks_both_ends_of_the_table_instead_of_scanning(desk):
    with CaptureQueriesContext(connection) as queries:
        estimate = paging.estimated_row_count(Signal, "default")

    assert estimate == len(desk)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + queries.captured_queries[-1]["sql"])
        plan = [row[3] for row in cursor.fetchall()]
    assert plan.count("SEARCH signals_signal") == 2
    assert not any(step.startswith("SCAN signals_signal") for step in plan), plan


# Detail page and read-only ledger -------------------------------------------------------------

def test_detail_page_shows_every_field_hash_status_and_lifecycle(staff_client, desk):
    won = desk["won"]

    response = staff_client.get(f"{LIST_URL}{won.pk}/change/")

    assert response.status_code == 200
    shown = {field for fieldset in response.context["adminform"] for line in fieldset for field in line}
    shown_names = {field.field["name"].removesuffix("_display").removesuffix("_utc") for field in shown}
    assert {f.name for f in Signal._meta.concrete_fields} <= shown_names
    html = response.content.decode()
    for value in (won.signal_id, won.sha256, "ORD-777", "executor-1", "112.0", "win", "12.0", "momentum",
                  "2025-11-18T14:30:00+00:00", "2026-06-05T12:00:00+00:00", "2026-06-06T12:00:00+00:00"):
        assert value in html
    assert "matches the signal" in html


def test_detail_page_flags_a_hash_that_does_not_match(staff_client, desk):
    row = desk["old"]
    with connection.cursor() as cursor:
        # Only a direct write can damage a row; the model refuses to.
        cursor.execute("UPDATE signals_signal SET sha256 = %s WHERE id = %s", ["0" * 64, row.pk])

    html = staff_client.get(f"{LIST_URL}{row.pk}/change/").content.decode()

    assert "does not match" in html
    assert row.expected_hash() in html


def test_post_to_change_a_generator_field_changes_nothing(staff_client, desk):
    row = desk["new_buy"]

    response = staff_client.post(f"{LIST_URL}{row.pk}/change/", {
        "symbol": "TSLA", "entry_price": "1", "confidence": "1", "outcome": "win", "order_id": "X"})

    assert response.status_code == 403
    row.refresh_from_db()
    assert (row.symbol, row.entry_price, row.confidence, row.outcome, row.order_id) == ("AAPL", 100.0, 92.0, None, None)


def test_detail_page_has_no_save_or_delete(staff_client, desk):
    html = staff_client.get(f"{LIST_URL}{desk['won'].pk}/change/").content.decode()

    assert 'name="_save"' not in html
    assert "/delete/" not in html


def test_no_add_and_no_delete(staff_client, desk):
    row = desk["old"]

    assert staff_client.get(f"{LIST_URL}add/").status_code == 403
    assert staff_client.post(f"{LIST_URL}add/", signal_data()).status_code == 403
    assert staff_client.get(f"{LIST_URL}{row.pk}/delete/").status_code == 403
    assert staff_client.post(f"{LIST_URL}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    staff_client.post(LIST_URL, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert Signal.objects.filter(pk=row.pk).exists()
    listing = staff_client.get(LIST_URL)
    assert "delete_selected" not in listing.content.decode()
    assert f'href="{LIST_URL}add/"' not in listing.content.decode()
