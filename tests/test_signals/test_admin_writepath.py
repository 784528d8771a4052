"""Staff see conflicts and quarantined records in the admin, read-only."""

import pytest

from signals.models import QuarantinedRecord, SignalConflict

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows():
    conflict = SignalConflict.objects.create(signal_id="SIG-1", stored={"entry_price": 1.0},
                                             incoming={"entry_price": 2.0}, incoming_digest="d" * 64, source="seg@0")
    record = QuarantinedRecord.objects.create(reason="checksum mismatch", raw="garbage", source="seg@10",
                                              fingerprint="f" * 64)
    return conflict, record


@pytest.mark.parametrize("name", ["signalconflict", "quarantinedrecord"])
def test_admin_lists_and_shows_rows_but_offers_no_add_or_change(admin_client, rows, name):
    obj = rows[0] if name == "signalconflict" else rows[1]
    listing = admin_client.get(f"/admin/signals/{name}/")
    assert listing.status_code == 200 and str(obj.source) in listing.content.decode()
    detail = admin_client.get(f"/admin/signals/{name}/{obj.pk}/change/")
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert admin_client.get(f"/admin/signals/{name}/add/").status_code == 403
