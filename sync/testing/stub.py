"""A local Alpine for development and tests, behaving as alpine-api.md describes.

It checks the key, the schema (422), de-duplicates by hash (201 "duplicate"),
verifies the hash (400), refuses rows its table cannot hold with a 500, and
stores confidence divided by 100 when above 1, all in memory. Faults can be
injected: error rates, slow answers, 429/503 with Retry-After, outage windows
and store-then-fail. ``AlpineStub`` runs in-process on port 0 for tests;
``manage.py run_alpine_stub`` runs it in the foreground.

Extra endpoints for tests and demos (not part of Alpine):
``GET /_stub/signals`` (what was stored), ``GET /_stub/stats`` and
``POST /_stub/faults`` (change fault settings; JSON body of FaultConfig fields).
They need the key as the signal endpoint does (only health is open), since
they read every stored signal and can change how the stub answers.

Each connection has a socket timeout (``SOCKET_TIMEOUT``): a client that
connects and sends nothing, or stops half-way, is dropped instead of holding
a server thread forever. A body over ``MAX_BODY_BYTES`` is refused with 413.
"""

import hashlib
import hmac
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger(__name__)

SIGNAL_PATH = "/api/v1/external-signals/sync/signal"
HEALTH_PATH = "/api/v1/external-signals/sync/health"
DEFAULT_STRATEGY = "weighted_consensus_v6"
SOCKET_TIMEOUT = 30.0  # seconds a connection may stay silent; longer than any client's pause between requests
MAX_BODY_BYTES = 1 << 20  # a signal is a few hundred bytes


@dataclass
class FaultConfig:
    error_rate: float = 0.0  # share of requests answered 500 (transient) without storing
    store_then_fail_rate: float = 0.0  # share stored and then answered 500
    slow_rate: float = 0.0  # share answered only after slow_seconds
    slow_seconds: float = 0.0
    throttle_rate: float = 0.0  # share answered 429 with Retry-After
    unavailable_rate: float = 0.0  # share answered 503 with Retry-After
    retry_after: str = "1"  # seconds or an HTTP date
    outage_until: float = 0.0  # time.time() before which every request gets 503
    delay_all_seconds: float = 0.0  # every signal request waits this long first
    schema_error_rate: float = 0.0  # share answered 422 as if Alpine's schema had changed


class StubState:
    def __init__(self, key=None, seed=None):
        self.key = key or None  # an empty key is no key, as Alpine's development mode
        self.faults = FaultConfig()
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.stored = {}  # hash -> stored row
        self.posts_by_hash = Counter()  # every POST with a hash, whatever the answer
        self.answers = Counter()  # status code -> count
        self.next_id = 1

    def roll(self, rate):
        if rate <= 0:
            return False
        with self.lock:
            return self.rng.random() < rate

    def stored_rows(self):
        with self.lock:
            return list(self.stored.values())


def fault_changes(changes):
    """Return the FaultConfig changes in a ``/_stub/faults`` body, or raise ValueError naming the field."""
    if not isinstance(changes, dict):
        raise ValueError("the body must be a JSON object of fault settings")
    known = {f.name: f.type for f in fields(FaultConfig)}
    checked = {}
    for name, value in changes.items():
        if name not in known:
            raise ValueError(f"unknown fault setting {name!r}; known: {', '.join(known)}")
        if known[name] in (str, "str"):
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0 \
                or value == float("inf"):
            raise ValueError(f"{name} must be a finite number, 0 or more")
        checked[name] = value
    return checked


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def validate(body):
    """Return (parsed fields, FastAPI-style error list) for a request body."""
    errors = []

    def err(loc, msg, kind):
        errors.append({"loc": ["body", loc], "msg": msg, "type": kind})

    if not isinstance(body, dict):
        return None, [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
    parsed = {}
    for name in ("signal_id", "symbol", "action", "timestamp"):
        if name not in body:
            err(name, "Field required", "missing")
        elif not isinstance(body[name], str):
            err(name, "Input should be a valid string", "string_type")
        else:
            parsed[name] = body[name]
    if "action" in parsed:
        if parsed["action"].upper() not in ("BUY", "SELL"):
            err("action", "action must be BUY or SELL", "value_error")
        parsed["action"] = parsed["action"].upper()
    for name, aliases, required in (("entry_price", (), True), ("target_price", ("take_profit",), False),
                                    ("stop_price", ("stop_loss",), False), ("confidence", (), True),
                                    ("consensus_agreement", (), False)):
        key = next((candidate for candidate in (name, *aliases) if body.get(candidate) is not None), None)
        if key is None:
            if required:
                err(name, "Field required", "missing")
            parsed[name] = None
            continue
        value = _number(body[key])
        if value is None:
            err(key, "Input should be a valid number", "float_parsing")
        parsed[name] = value
    if parsed.get("confidence") is not None and not 0 <= parsed["confidence"] <= 100:
        err("confidence", "Input should be between 0 and 100", "less_than_equal")
    hash_value = body.get("verification_hash", body.get("sha256"))
    if hash_value is None:
        err("sha256", "Field required", "missing")
    elif not isinstance(hash_value, str):
        err("sha256", "Input should be a valid string", "string_type")
    parsed["hash"] = hash_value
    for name, default in (("strategy", DEFAULT_STRATEGY), ("asset_type", "stock"),
                          ("data_source", "weighted_consensus"), ("reasoning", None), ("regime", None)):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            err(name, "Input should be a valid string", "string_type")
        parsed[name] = default if value is None else value
    sources = body.get("sources_count")
    if sources is not None and (isinstance(sources, bool) or not isinstance(sources, int)):
        err("sources_count", "Input should be a valid integer", "int_type")
    return parsed, errors


def expected_hash(parsed):
    fields_ = {name: parsed[name] for name in ("signal_id", "symbol", "action", "entry_price", "target_price",
                                                "stop_price", "confidence", "strategy", "timestamp")}
    return hashlib.sha256(json.dumps(fields_, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def table_refusal(parsed):
    """Return the reason Alpine's table refuses the row, or '' (its 500s)."""
    symbol = parsed["symbol"].strip().upper()
    if len(symbol) > 20:
        return f"value too long for symbol (max 20 characters): {symbol!r}"
    for name in ("entry_price", "target_price", "stop_price"):
        if parsed[name] is not None and not parsed[name] > 0:
            return f"{name} must be greater than 0"
    rationale = parsed["reasoning"] or f"Weighted Consensus v6.0 - {parsed['strategy']}"
    if len(rationale) < 20:
        return "rationale too short (at least 20 characters)"
    if not re.fullmatch(r"[0-9a-fA-F]{64}", parsed["hash"]):
        return "verification hash must be 64 hexadecimal characters"
    return ""


class AlpineHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Alpine's server does
    server_version = "AlpineStub/1"

    def log_message(self, fmt, *args):
        logger.debug("%s " + fmt, self.address_string(), *args)

    @property
    def state(self):
        return self.server.state

    def reply(self, status, payload, headers=None):
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        with self.state.lock:
            self.state.answers[status] += 1

    def setup(self):
        # StreamRequestHandler sets this timeout on the socket: reads and writes that wait longer fail.
        self.timeout = self.server.socket_timeout
        super().setup()

    def read_body(self):
        """Return the body, or None after answering 400/413 for a Content-Length that cannot be read."""
        length = self.headers.get("Content-Length") or "0"
        if not length.isdecimal():
            self.close_connection = True
            self.reply(400, {"detail": "Content-Length must be a whole number"})
            return None
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            self.reply(413, {"detail": f"Body larger than {MAX_BODY_BYTES} bytes"})
            return None
        return self.rfile.read(int(length)) if int(length) else b""

    def authorized(self):
        """Return True if the request carries the key (or none is configured); else answer 401."""
        key = self.state.key
        if not key:
            return True
        sent = self.headers.get("X-API-Key")
        if sent is None:
            self.reply(401, {"detail": "Missing X-API-Key header"})
            return False
        if not hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), key.encode("utf-8")):
            self.reply(401, {"detail": "Invalid API key"})
            return False
        return True

    def do_GET(self):
        if self.path == HEALTH_PATH:
            return self.reply(200, {"status": "healthy", "service": "Alpine Analytics - External Signal Sync",
                                    "endpoint": SIGNAL_PATH})
        if self.path not in ("/_stub/signals", "/_stub/stats"):
            return self.reply(404, {"detail": "Not Found"})
        if not self.authorized():
            return None
        if self.path == "/_stub/signals":
            return self.reply(200, self.state.stored_rows())
        with self.state.lock:
            stats = {"stored": len(self.state.stored), "posts": sum(self.state.posts_by_hash.values()),
                     "answers": dict(self.state.answers), "faults": asdict(self.state.faults)}
        return self.reply(200, stats)

    def do_POST(self):
        raw = self.read_body()
        if raw is None:
            return None
        if self.path not in ("/_stub/faults", SIGNAL_PATH):
            return self.reply(404, {"detail": "Not Found"})
        if not self.authorized():
            return None
        if self.path == SIGNAL_PATH:
            return self.handle_signal(raw)
        try:
            changes = fault_changes(json.loads(raw or b"{}"))
        except (ValueError, RecursionError) as exc:
            return self.reply(400, {"detail": f"Invalid fault settings: {exc}"[:500]})
        with self.state.lock:
            for name, value in changes.items():
                setattr(self.state.faults, name, value)
            faults = asdict(self.state.faults)
        return self.reply(200, faults)

    def handle_signal(self, raw):
        state, faults = self.state, self.state.faults
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return self.reply(422, {"detail": [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]})
        parsed, errors = validate(body)
        if not errors and state.roll(faults.schema_error_rate):
            errors = [{"loc": ["body", "regime"], "msg": "Input should be a valid string", "type": "string_type"}]
        if errors:
            return self.reply(422, {"detail": errors})
        with state.lock:
            state.posts_by_hash[parsed["hash"]] += 1
        if faults.delay_all_seconds:
            time.sleep(faults.delay_all_seconds)
        if time.time() < faults.outage_until:
            return self.reply(503, {"detail": "Service Unavailable"}, {"Retry-After": faults.retry_after})
        if state.roll(faults.throttle_rate):
            return self.reply(429, {"detail": "Too Many Requests"}, {"Retry-After": faults.retry_after})
        if state.roll(faults.unavailable_rate):
            return self.reply(503, {"detail": "Service Unavailable"}, {"Retry-After": faults.retry_after})
        if state.roll(faults.slow_rate):
            time.sleep(faults.slow_seconds)
        if state.roll(faults.error_rate):
            return self.reply(500, {"detail": "Failed to store signal: could not obtain a database connection"})
        with state.lock:
            existing = state.stored.get(parsed["hash"])
        if existing:
            return self.reply(201, {"status": "duplicate", "message": "Signal already exists",
                                    "signal_id": existing["id"]})
        if expected_hash(parsed) != parsed["hash"]:
            return self.reply(400, {"detail": "Signal hash verification failed"})
        refusal = table_refusal(parsed)
        if refusal:
            return self.reply(500, {"detail": f"Failed to store signal: {refusal}"})
        with state.lock:
            existing = state.stored.get(parsed["hash"])
            if existing is None:
                confidence = parsed["confidence"]
                row = {
                    "id": state.next_id, "external_signal_id": parsed["signal_id"],
                    "symbol": parsed["symbol"].strip().upper(), "action": parsed["action"],
                    "entry_price": parsed["entry_price"], "target_price": parsed["target_price"],
                    "stop_price": parsed["stop_price"],
                    # Alpine's quirk: confidence above 1 is stored as a fraction.
                    "confidence": confidence / 100 if confidence > 1 else confidence,
                    "strategy": parsed["strategy"], "timestamp": parsed["timestamp"],
                    "verification_hash": parsed["hash"],
                    "rationale": parsed["reasoning"] or f"Weighted Consensus v6.0 - {parsed['strategy']}",
                }
                state.next_id += 1
                state.stored[parsed["hash"]] = row
        if existing:
            return self.reply(201, {"status": "duplicate", "message": "Signal already exists", "signal_id": existing["id"]})
        if state.roll(faults.store_then_fail_rate):
            return self.reply(500, {"detail": "Failed to store signal: connection reset while committing"})
        return self.reply(201, {"status": "success", "message": "Signal stored successfully", "signal_id": row["id"],
                                "alpine_signal_id": row["id"], "external_signal_id": parsed["signal_id"]})


class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    socket_timeout = SOCKET_TIMEOUT

    def handle_error(self, request, client_address):
        # A client that timed out and hung up is part of the fault injection, not news.
        logger.debug("request from %s ended early", client_address, exc_info=True)


class AlpineStub:
    """A running stub: ``url``, ``state`` (stored rows, counters, faults), ``stop()``."""

    def __init__(self, host="127.0.0.1", port=0, key=None, seed=None, socket_timeout=SOCKET_TIMEOUT):
        self.server = StubServer((host, port), AlpineHandler)
        self.server.state = StubState(key=key, seed=seed)
        self.server.socket_timeout = socket_timeout
        self.thread = None

    @property
    def state(self):
        return self.server.state

    @property
    def faults(self):
        return self.server.state.faults

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, name="alpine-stub", daemon=True)
        self.thread.start()
        return self

    def serve_forever(self):
        self.server.serve_forever()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
