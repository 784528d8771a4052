"""The Signal field catalogue: which fields there are, who sets each, and in what order they travel.

Every list of Signal fields elsewhere (the model's frozen fields, the journal
line, the writer's rows, validation, the hash check, demo data) is derived from
this one. The model declares the columns themselves, as Django needs; a test
holds the two in agreement. Plain Python, importable without Django set up.
"""

import re
from datetime import timedelta

from signals.ledger.hashing import DEFAULT_STRATEGY

# Bounds ------------------------------------------------------------------------------

ACTIONS = ("BUY", "SELL")
OUTCOMES = ("win", "loss", "expired")
# Characters a symbol may hold (a bracket class shared by the validator and the
# check constraint; "-" last): AAPL, BTC-USD, NESN.SW, BRK/B, ES=F, ^GSPC, X:BTCUSD.
SYMBOL_CHARS = "A-Z0-9./_=^:-"
# No instrument trades above this; also the bound that keeps NaN and infinity
# out on PostgreSQL, where NaN compares greater than every number.
MAX_PRICE = 1e12
METADATA_MAX_BYTES = 16_384
# Deeper metadata is refused: Python's JSON encoder and decoder recurse once a
# level (a RecursionError near 1,000) and SQLite's JSON functions stop at 1,000.
METADATA_MAX_DEPTH = 32
# sources_count is a 32-bit integer on PostgreSQL; the same bound on SQLite
# keeps what one database stores storable in the other (archive, migration).
SOURCES_COUNT_MAX = 2**31 - 1
# Bounds P&L so NaN and infinity stay out on PostgreSQL (see MAX_PRICE).
PROFIT_LOSS_MAX = 1e15
SYMBOL_RE = re.compile(f"[{SYMBOL_CHARS}]+")
SHA256_RE = re.compile("[0-9a-f]{64}")
# A timestamp further ahead than this is refused.
FUTURE_TOLERANCE = timedelta(days=1)
# Text limits: the columns' max_length, and what validation refuses beyond.
MAX_LENGTHS = {
    "signal_id": 100,
    "symbol": 20,
    "strategy": 100,
    "asset_type": 20,
    "data_source": 100,
    "service_type": 20,
    "generated_by": 100,
    "regime": 50,
    "reasoning": 10_000,
    "order_id": 100,
    "executor_id": 100,
    "legacy_sha256": 128,
}

# Who sets what -------------------------------------------------------------------------

# What a generator sends, in the order of a journal line's array. Lines already
# written are read by position: never reorder, and add a field at the end only.
GENERATOR_FIELDS = (
    "signal_id", "symbol", "action", "entry_price", "target_price", "stop_price", "confidence",
    "strategy", "asset_type", "data_source", "timestamp", "sha256", "reasoning", "regime",
    "consensus_agreement", "sources_count", "service_type", "generated_by", "metadata",
)
# Other names the Alpine contract accepts for a field; the second name wins
# when both are sent (as the receiver does for verification_hash).
ALIASES = {"take_profit": "target_price", "stop_loss": "stop_price", "verification_hash": "sha256"}
# Text a generator may leave out: the value stored instead (the model's defaults).
TEXT_DEFAULTS = {
    "strategy": DEFAULT_STRATEGY,
    "asset_type": "stock",
    "data_source": "weighted_consensus",
    "service_type": "both",
    "generated_by": "signal_generator",
}
# Free text a generator may leave out (stored empty); reasoning may hold line breaks.
OPTIONAL_TEXT = ("regime", "reasoning")
# The fields the verification hash covers, in the formula's argument order.
HASH_FIELDS = (
    "signal_id", "symbol", "action", "entry_price", "target_price", "stop_price", "confidence",
    "strategy", "timestamp",
)
# Set once the signal is stored, by recording an execution or closing the position.
LIFECYCLE_FIELDS = ("outcome", "exit_price", "exit_timestamp", "profit_loss_pct", "order_id", "executor_id")
# Set by SignalHub (or kept from an imported file), never by a generator.
PROVENANCE_FIELDS = ("created_at", "legacy_sha256")
# Never change once stored: what the generator said and where it came from.
FROZEN_FIELDS = (*GENERATOR_FIELDS, *PROVENANCE_FIELDS)
# What tells a duplicate from a conflict: everything the generator said.
CONTENT_FIELDS = GENERATOR_FIELDS
DATETIME_FIELDS = ("timestamp", "exit_timestamp", "created_at")

# Every stored column but the primary key, in the model's declaration order
# (the order of the writer's and demo's raw inserts).
COLUMN_FIELDS = (
    "signal_id", "symbol", "action", "entry_price", "target_price", "stop_price", "confidence",
    "strategy", "asset_type", "data_source", "timestamp", "sha256", "legacy_sha256", "reasoning",
    "regime", "consensus_agreement", "sources_count", "service_type", "generated_by", "metadata",
    "outcome", "exit_price", "exit_timestamp", "profit_loss_pct", "order_id", "executor_id",
    "created_at",
)
