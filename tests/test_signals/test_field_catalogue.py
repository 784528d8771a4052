"""The field catalogue agrees with the model, and the journal line keeps the order old lines were written in."""

import inspect
from datetime import UTC, datetime

from django.db import models

from signals.ledger import fields, hashing
from signals.ledger.validation import ALIASES, KNOWN_FIELDS, LIFECYCLE_FIELDS
from signals.models import GENERATOR_FIELDS, Signal
from signals.writepath import journal

# The order of a journal line's array, as lines on disk were written. Never change it.
JOURNAL_LINE_ORDER = (
    "signal_id", "symbol", "action", "entry_price", "target_price", "stop_price", "confidence",
    "strategy", "asset_type", "data_source", "timestamp", "sha256", "reasoning", "regime",
    "consensus_agreement", "sources_count", "service_type", "generated_by", "metadata",
)
# A line written before the catalogue existed.
OLD_LINE = (b'9aa55d21 1763476200000 ["PIN-1","AAPL","BUY",228.5,240.0,null,81.5,"weighted_consensus_v6","stock",'
            b'"weighted_consensus","2025-11-18T14:30:00+00:00",'
            b'"9bb845bbf1ffa72a1c82626157c33d2c0208a92cb35dad90001a89252ed231a2","why","",null,4,"both",'
            b'"signal_generator",{"extra":"kept"}]')


def model_fields():
    return [f for f in Signal._meta.concrete_fields if not f.primary_key]


def test_the_catalogue_lists_every_stored_column_in_the_models_order():
    assert fields.COLUMN_FIELDS == tuple(f.name for f in model_fields())


def test_every_column_is_set_by_exactly_one_party():
    parties = [fields.GENERATOR_FIELDS, fields.LIFECYCLE_FIELDS, fields.PROVENANCE_FIELDS]
    named = [name for party in parties for name in party]
    assert len(named) == len(set(named))
    assert set(named) == set(fields.COLUMN_FIELDS)


def test_text_limits_are_the_columns_max_lengths():
    limited = {f.name: f.max_length for f in model_fields() if isinstance(f, models.CharField)}
    for name, limit in fields.MAX_LENGTHS.items():
        if name == "reasoning":  # a TextField, bounded by a check constraint
            assert isinstance(Signal._meta.get_field(name), models.TextField)
        else:
            assert limited.pop(name) == limit
    # Fixed by their choices or their format rather than a limit of their own.
    assert set(limited) == {"action", "outcome", "sha256"}


def test_text_defaults_are_the_models_defaults():
    for name, default in fields.TEXT_DEFAULTS.items():
        assert Signal._meta.get_field(name).get_default() == default
    for name in fields.OPTIONAL_TEXT:
        assert Signal._meta.get_field(name).get_default() == ""


def test_the_hash_covers_the_formulas_arguments_all_from_the_generator():
    assert fields.HASH_FIELDS == tuple(inspect.signature(hashing.canonical_fields).parameters)
    assert set(fields.HASH_FIELDS) <= set(fields.GENERATOR_FIELDS)


def test_datetime_fields_are_the_models_datetimes():
    assert set(fields.DATETIME_FIELDS) == {f.name for f in model_fields() if isinstance(f, models.DateTimeField)}


def test_frozen_fields_are_what_the_generator_said_and_where_it_came_from():
    assert set(GENERATOR_FIELDS) == set(fields.GENERATOR_FIELDS) | set(fields.PROVENANCE_FIELDS)


def test_validation_knows_the_generators_fields_and_refuses_the_rest_from_generators():
    assert set(KNOWN_FIELDS) - set(ALIASES) == set(fields.GENERATOR_FIELDS)
    assert tuple(LIFECYCLE_FIELDS) == (*fields.LIFECYCLE_FIELDS, *fields.PROVENANCE_FIELDS)


def test_the_journal_line_order_is_pinned():
    assert journal.LINE_FIELDS == JOURNAL_LINE_ORDER


def test_a_line_written_before_the_catalogue_reads_back_the_same():
    appended_ms, values = journal.decode(OLD_LINE)
    assert appended_ms == 1763476200000
    assert values == {
        "signal_id": "PIN-1", "symbol": "AAPL", "action": "BUY", "entry_price": 228.5, "target_price": 240.0,
        "confidence": 81.5, "strategy": "weighted_consensus_v6", "asset_type": "stock",
        "data_source": "weighted_consensus", "timestamp": datetime(2025, 11, 18, 14, 30, tzinfo=UTC),
        "sha256": "9bb845bbf1ffa72a1c82626157c33d2c0208a92cb35dad90001a89252ed231a2", "reasoning": "why",
        "regime": "", "sources_count": 4, "service_type": "both", "generated_by": "signal_generator",
        "metadata": {"extra": "kept"},
    }
    assert journal.encode(values, now_ms=appended_ms) == OLD_LINE + b"\n"
