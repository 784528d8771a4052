"""Realistic demo signals, generated and inserted in chunks.

A handful of stocks and crypto pairs move on geometric random walks; signals
are made in time order over the last ``days`` days, with confidence mostly 55
to 99 and a target and stop around the entry. A signal whose holding period
has ended is closed by ``signals.ledger.lifecycle.close_outcome``, the same rule the
ledger uses, so outcomes and P&L agree with the model.

Rows go in through the write path's raw inserts (``signals.writepath.sqlite``
multi-row ``INSERT ... VALUES``, ``signals.writepath.postgresql`` ``COPY``) in
chunks, rather than ``bulk_create``, which caps a SQLite INSERT at 999
parameters (a few dozen signals a statement). Values still pass through each
field's ``get_db_prep_save``, so they are stored exactly as the ORM would store
them, and the table's check constraints vet every row. Deliveries are queued
through the writer, as for any stored signal.
"""

import math
import random
from dataclasses import dataclass
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.utils import timezone
from tqdm import tqdm

from signals.ledger import hashing
from signals.ledger.fields import COLUMN_FIELDS
from signals.ledger.ids import new_signal_id
from signals.ledger.lifecycle import close_outcome
from signals.models import Signal
from signals.writepath import postgresql, sqlite
from signals.writepath.writer import queue_deliveries

CHUNK_SIZE = 5_000


@dataclass
class Instrument:
    symbol: str
    asset_type: str
    price: float  # where the walk starts
    daily_vol: float  # standard deviation of one day's log return
    decimals: int


INSTRUMENTS = (
    Instrument("AAPL", "stock", 228.0, 0.016, 2),
    Instrument("MSFT", "stock", 415.0, 0.015, 2),
    Instrument("NVDA", "stock", 135.0, 0.030, 2),
    Instrument("TSLA", "stock", 250.0, 0.035, 2),
    Instrument("AMZN", "stock", 186.0, 0.020, 2),
    Instrument("SPY", "stock", 575.0, 0.010, 2),
    Instrument("BTC-USD", "crypto", 64_000.0, 0.035, 2),
    Instrument("ETH-USD", "crypto", 2_600.0, 0.045, 2),
    Instrument("SOL-USD", "crypto", 150.0, 0.060, 3),
    Instrument("DOGE-USD", "crypto", 0.11, 0.070, 5),
)
STRATEGIES = ("weighted_consensus_v6", "momentum", "mean_reversion", "breakout")
REGIMES = ("bull", "bear", "chop", "volatile")
REASONS = {
    "momentum": "Price above the 20-day average with rising volume",
    "mean_reversion": "Stretched two deviations from the mean, expecting a pull-back",
    "breakout": "Closed through the range high on heavy volume",
    "weighted_consensus_v6": "Most sources agree on direction after weighting by past accuracy",
}
# A position is held this long (hours) before it is closed; younger signals stay open.
HOLD_HOURS = (1.0, 240.0)

_FIELDS = COLUMN_FIELDS


class _Walk:
    """One instrument's price, moved forward in time by a geometric random walk."""

    def __init__(self, instrument, rng):
        self.instrument = instrument
        self.price = instrument.price
        self.rng = rng

    def step(self, days):
        vol = self.instrument.daily_vol * math.sqrt(max(days, 0.0))
        self.price *= math.exp(self.rng.gauss(-vol * vol / 2, vol))
        return self.price


def _confidence(rng):
    # Mostly 55-99 (a generator rarely emits below its threshold), a few weaker ones.
    if rng.random() < 0.93:
        return round(min(99.0, 55.0 + rng.betavariate(2.0, 2.6) * 44.0), 1)
    return round(rng.uniform(30.0, 55.0), 1)


def demo_signal(rng, walk, timestamp, now):
    """Return the field values of one demo signal made at ``timestamp`` (closed if its hold has ended)."""
    inst = walk.instrument
    entry = round(walk.price, inst.decimals)
    action = "BUY" if rng.random() < 0.55 else "SELL"
    confidence = _confidence(rng)
    strategy = rng.choice(STRATEGIES)
    scale = inst.daily_vol * 1.2
    up, down = rng.uniform(0.6, 1.6) * scale, rng.uniform(0.4, 1.0) * scale
    if action == "BUY":
        target, stop = entry * (1 + up), entry * (1 - down)
    else:
        target, stop = entry * (1 - up), entry * (1 + down)
    target = round(target, inst.decimals) if rng.random() > 0.03 else None
    stop = round(stop, inst.decimals) if rng.random() > 0.03 else None
    signal_id = new_signal_id()
    values = {
        "signal_id": signal_id, "symbol": inst.symbol, "action": action, "entry_price": entry,
        "target_price": target, "stop_price": stop, "confidence": confidence, "strategy": strategy,
        "asset_type": inst.asset_type, "data_source": "weighted_consensus", "timestamp": timestamp,
        "legacy_sha256": "", "reasoning": f"{REASONS[strategy]} ({inst.symbol}, {confidence:.0f}% confidence).",
        "regime": rng.choice(REGIMES), "consensus_agreement": round(rng.uniform(50.0, 100.0), 1),
        "sources_count": rng.randint(3, 8), "service_type": "both", "generated_by": "demo_generator",
        "metadata": {}, "outcome": None, "exit_price": None, "exit_timestamp": None,
        "profit_loss_pct": None, "order_id": None, "executor_id": None,
        # Stored a moment after the generator made it.
        "created_at": timestamp + timedelta(milliseconds=rng.randint(20, 1500)),
    }
    values["sha256"] = hashing.compute_hash(
        signal_id=signal_id, symbol=inst.symbol, action=action, entry_price=entry, target_price=target,
        stop_price=stop, confidence=confidence, strategy=strategy, timestamp=timestamp)
    if confidence >= 70 and rng.random() < 0.4:
        values["order_id"] = f"ORD-{rng.getrandbits(48):012x}"
        values["executor_id"] = f"demo-executor-{rng.randint(1, 3)}"
    hold = timedelta(hours=rng.uniform(*HOLD_HOURS))
    if timestamp + hold <= now:
        # Better-than-even odds for confident signals, so the outcomes look like a working desk.
        edge = (confidence - 50.0) / 50.0 * 0.5 * inst.daily_vol
        move = rng.gauss(edge if action == "BUY" else -edge, inst.daily_vol * math.sqrt(hold.total_seconds() / 86_400))
        exit_price = max(round(entry * math.exp(move), inst.decimals), 10.0 ** -inst.decimals)
        pnl, outcome = close_outcome(action, entry, target, stop, exit_price)
        values.update(exit_price=exit_price, exit_timestamp=timestamp + hold, profit_loss_pct=pnl, outcome=outcome)
    return values


def iter_demo_signals(count, *, days=30, seed=None, now=None):
    """Yield ``count`` demo signals (dicts of field values) in time order over the last ``days`` days."""
    if count < 0:
        raise ValueError("count must be at least 0")
    if days <= 0:
        raise ValueError("days must be greater than 0")
    rng = random.Random(seed)
    now = now or timezone.now()
    start = now - timedelta(days=days)
    span = (now - start).total_seconds()
    walks = [_Walk(inst, rng) for inst in INSTRUMENTS]
    last_seen = [start] * len(walks)
    for i in range(count):
        # Evenly spread with jitter, so time only moves forward and the newest is just before now.
        timestamp = start + timedelta(seconds=span * (i + rng.random()) / max(count, 1))
        timestamp = timestamp.replace(microsecond=timestamp.microsecond // 1000 * 1000)
        k = rng.randrange(len(walks))
        walks[k].step((timestamp - last_seen[k]).total_seconds() / 86_400)
        last_seen[k] = timestamp
        yield demo_signal(rng, walks[k], timestamp, now)


_SIGNAL_ID = _FIELDS.index("signal_id")


def generate_demo_signals(count, *, days=30, seed=None, now=None, chunk_size=CHUNK_SIZE, progress=False, using=None):
    """Store ``count`` demo signals; return how many were stored.

    Memory stays bounded by ``chunk_size``: rows are generated lazily and each
    chunk is inserted in its own transaction.
    """
    using = using or router.db_for_write(Signal)
    connection = connections[using]
    fields = [Signal._meta.get_field(name) for name in _FIELDS]
    # Only datetimes and JSON need the database's form; everything else is stored as is.
    prepared = [i for i, f in enumerate(fields) if f.get_internal_type() in ("DateTimeField", "JSONField")]
    stored = 0
    chunk = []
    with tqdm(total=count, unit="signal", unit_scale=True, disable=not progress, desc="demo signals") as bar:
        for values in iter_demo_signals(count, days=days, seed=seed, now=now):
            row = [values[name] for name in _FIELDS]
            for i in prepared:
                if row[i] is not None:
                    row[i] = fields[i].get_db_prep_save(row[i], connection)
            chunk.append(row)
            if len(chunk) >= chunk_size:
                stored += _insert(connection, chunk)
                bar.update(len(chunk))
                chunk = []
        if chunk:
            stored += _insert(connection, chunk)
            bar.update(len(chunk))
    return stored


def _insert(connection, rows):
    with transaction.atomic(using=connection.alias):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                postgresql.copy_rows(connection, cursor, connection.ops.quote_name(Signal._meta.db_table), rows)
        else:
            sqlite.insert_rows(connection, rows)
        if connection.alias == DEFAULT_DB_ALIAS:
            # Demo signals are queued for delivery like any other (the outbox
            # works on the main database; scratch databases of the benchmarks
            # are left without).
            queue_deliveries([row[_SIGNAL_ID] for row in rows])
    return len(rows)
