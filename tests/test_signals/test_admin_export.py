"""The Signal admin's CSV export: the filtered list, streamed, safe in a spreadsheet, for operators only."""

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse

from signals.admin import export
from tests.support import admin_signal as _signal

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("admin_clock")]

LIST_URL = "/admin/signals/signal/"
EXPORT_URL = "/admin/signals/signal/export/"


# CSV export -------------------------------------------------------------------------------

def _csv_rows(response):
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_changelist_links_to_export_with_current_filters(staff_client, desk):
    html = staff_client.get(LIST_URL, {"action": "SELL", "q": "BTC-USD"}).content.decode()

    assert f'href="{EXPORT_URL}?action=SELL&amp;q=BTC-USD"' in html


def test_export_streams_the_filtered_list_as_csv(staff_client, desk):
    response = staff_client.get(EXPORT_URL, {"outcome": "open"})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    rows = _csv_rows(response)
    assert [row["signal_id"] for row in rows] == [desk["new_buy"].signal_id, desk["sell_crypto"].signal_id]
    assert list(rows[0]) == list(export.COLUMNS)
    crypto = rows[1]
    assert crypto["symbol"] == "BTC-USD" and crypto["action"] == "SELL"
    assert crypto["entry_price"] == "60000.0"
    assert crypto["outcome"] == "" and crypto["exit_price"] == ""
    assert crypto["timestamp"] == "2025-11-18T14:30:00+00:00"
    assert crypto["sha256"] == desk["sell_crypto"].sha256
    assert crypto["metadata"] == "{}"


def test_export_follows_search_and_lifecycle(staff_client, desk):
    rows = _csv_rows(staff_client.get(EXPORT_URL, {"q": "ORD-777"}))

    assert len(rows) == 1
    assert rows[0]["outcome"] == "win"
    assert rows[0]["profit_loss_pct"] == "12.0"
    assert rows[0]["order_id"] == "ORD-777"


def test_export_of_the_whole_list_comes_in_chunks(staff_client, desk, monkeypatch):
    monkeypatch.setattr(export, "ROWS_PER_CHUNK", 2)

    response = staff_client.get(EXPORT_URL)
    chunks = list(response.streaming_content)

    assert len(chunks) == 1 + 3  # header, then 2 + 2 + 1 rows
    assert b"".join(chunks).decode().count("\n") == len(desk) + 1


def test_export_neutralises_text_a_spreadsheet_would_run(staff_client):
    _signal(reasoning="=HYPERLINK(\"http://example.invalid\")")

    rows = _csv_rows(staff_client.get(EXPORT_URL))

    assert rows[0]["reasoning"].startswith("'=HYPERLINK")


def test_export_needs_a_staff_login(client, desk):
    response = client.get(EXPORT_URL)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_export_needs_view_permission(client, desk):
    user = User.objects.create_user("guest", password="not-used", is_staff=True)
    client.force_login(user)

    assert client.get(EXPORT_URL).status_code == 403
