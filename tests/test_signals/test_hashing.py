import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signals.ledger import hashing
from signals.ledger.validation import clean_signal

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "alpine-hash-vectors.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["body"]["signal_id"] for v in VECTORS])
def test_hash_reproduces_alpine_vector(vector):
    body = vector["body"]
    fields = {key: body.get(key) for key in (
        "signal_id", "symbol", "action", "entry_price", "target_price", "stop_price", "confidence", "strategy", "timestamp")}
    assert hashing.canonical_json(**fields) == vector["canonical_json"]
    assert hashing.compute_hash(**fields) == vector["sha256"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["body"]["signal_id"] for v in VECTORS])
def test_validated_signal_carries_the_vector_hash(vector):
    # Through the ingest validation: the timestamp is parsed, stored as a
    # datetime and re-rendered canonically, and the hash must still agree.
    cleaned = clean_signal(vector["body"], now=datetime(2026, 1, 1, tzinfo=UTC))
    assert cleaned["sha256"] == vector["sha256"]
    assert hashing.canonical_timestamp(cleaned["timestamp"]) == vector["body"]["timestamp"]


@pytest.mark.django_db
@pytest.mark.parametrize("vector", VECTORS, ids=[v["body"]["signal_id"] for v in VECTORS])
def test_stored_row_rebuilds_its_hash(vector):
    from signals.models import Signal

    Signal.objects.create(**clean_signal(vector["body"], now=datetime(2026, 1, 1, tzinfo=UTC)))
    row = Signal.objects.get(signal_id=vector["body"]["signal_id"])
    assert row.sha256 == vector["sha256"]
    assert row.expected_hash() == vector["sha256"]
    assert row.hash_matches()


def test_canonical_timestamp_converts_to_utc_and_refuses_naive():
    from datetime import timedelta, timezone

    aware = datetime(2025, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    assert hashing.canonical_timestamp(aware) == "2025-01-01T08:00:00+00:00"
    with pytest.raises(ValueError):
        hashing.canonical_timestamp(datetime(2025, 1, 1))
