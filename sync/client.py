"""Talking to Alpine: the request body, one POST, and what its answer means.

No database access here: the worker (sync.delivery) records what these return.
"""

import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry

from signalhub.secrets import mask_text, mask_url
from signals.ledger.hashing import canonical_timestamp

logger = logging.getLogger(__name__)

BODY_KEEP_BYTES = 4096

# The longest wait a Retry-After header can ask for: a wrong header must not stall a row for ever.
RETRY_AFTER_MAX = 86400
# urllib3's parser (it comes with requests); only its Retry-After parsing is used, never its retries.
_RETRY_AFTER = Retry(total=0, retry_after_max=RETRY_AFTER_MAX)

# What the worker does with an answer.
DELIVERED, DEAD, PAUSE, RETRY = "delivered", "dead", "pause", "retry"

# Error classes (Delivery.error_class, DeliveryAttempt.error_class).
SCHEMA, HASH_MISMATCH, REJECTED = "schema", "hash_mismatch", "rejected"
AUTH, NOT_FOUND, REDIRECT = "auth", "not_found", "redirect"
SERVER_ERROR, THROTTLED, TIMEOUT, CONNECTION, UNEXPECTED = "server_error", "throttled", "timeout", "connection", "unexpected_status"
INTERNAL = "internal"

# Alpine's own table refuses these rows with a 500 "Failed to store signal: <reason>";
# retrying cannot help. Matched on the reason (README, "Alpine's permanent 500s").
PERMANENT_500 = re.compile(
    r"symbol|price|rationale|reasoning|hash|too long|too short|greater than|check constraint|"
    r"violates|out of range|invalid input", re.IGNORECASE)
# ... unless the reason reads as the database or the network failing under it.
TRANSIENT_500 = re.compile(
    r"locked|timeout|timed out|connection|deadlock|serializ|temporar|unavailable|try again|too many", re.IGNORECASE)

RATIONALE_PREFIX = "Weighted Consensus v6.0 - "


def build_payload(signal):
    """Return the JSON body for ``signal``: the contract's fields, null and empty optional text omitted.

    The timestamp is the canonical string the stored hash was computed over;
    prices and confidence go as stored (floats). An empty ``reasoning`` is left
    out so Alpine writes its default rationale instead of an empty one it
    would refuse.
    """
    body = {
        "signal_id": signal.signal_id,
        "symbol": signal.symbol,
        "action": signal.action,
        "entry_price": signal.entry_price,
        "target_price": signal.target_price,
        "stop_price": signal.stop_price,
        "confidence": signal.confidence,
        "strategy": signal.strategy,
        "asset_type": signal.asset_type,
        "data_source": signal.data_source,
        "timestamp": canonical_timestamp(signal.timestamp),
        "sha256": signal.sha256,
        "reasoning": signal.reasoning or None,
        "regime": signal.regime or None,
        "consensus_agreement": signal.consensus_agreement,
        "sources_count": signal.sources_count,
    }
    return {key: value for key, value in body.items() if value is not None}


def alpine_would_refuse(payload):
    """Return why Alpine's table refuses this body (its documented rules), or ''."""
    if len(str(payload.get("symbol", "")).strip()) > 20:
        return "symbol longer than 20 characters"
    for name in ("entry_price", "target_price", "stop_price"):
        value = payload.get(name)
        if value is not None and not value > 0:
            return f"{name} not greater than 0"
    rationale = payload.get("reasoning") or RATIONALE_PREFIX + str(payload.get("strategy") or "weighted_consensus_v6")
    if len(rationale) < 20:
        return "rationale too short (under 20 characters)"
    if not re.fullmatch(r"[0-9a-fA-F]{64}", str(payload.get("sha256", ""))):
        return "verification hash is not 64 hexadecimal characters"
    return ""


@dataclass
class Outcome:
    """One attempt's result, and what to do about it."""

    verdict: str
    error_class: str = ""
    status_code: int = 0
    reason: str = ""
    body: str = ""
    alpine_signal_id: str = ""
    retry_after: float | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    duration_ms: int = 0


def parse_retry_after(value):
    """Return the seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None.

    Never negative, at most RETRY_AFTER_MAX; a value that is neither form is ignored.
    """
    if not value:
        return None
    try:
        return float(_RETRY_AFTER.parse_retry_after(value))
    except (InvalidHeader, ValueError, OverflowError):
        return None


def _detail(status, data, text):
    """Return Alpine's reason in words from its JSON body (or the raw text)."""
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(part) for part in item.get("loc", []) if part != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if detail:
        return str(detail)
    return text.strip()[:500] or f"HTTP {status} with an empty body"


def redirect_reason(status, location):
    """Return why a 3xx answer from Alpine is an error, naming where it pointed (masked)."""
    where = f" to {mask_url(location)}" if location else ""
    return (f"Alpine answered {status}, a redirect{where}, which SignalHub does not follow (the API key is only "
            f"ever sent to ALPINE_API_URL): set ALPINE_API_URL to Alpine's own address")


def classify(status, data, text, payload, headers=None):
    """Return the Outcome (without timings) for an HTTP answer."""
    headers = headers or {}
    reason = _detail(status, data, text)
    if 200 <= status < 300:
        alpine_id = data.get("alpine_signal_id") or data.get("signal_id") if isinstance(data, dict) else None
        verdict_reason = data.get("status", "") if isinstance(data, dict) else ""
        return Outcome(DELIVERED, status_code=status, reason=verdict_reason, alpine_signal_id=str(alpine_id or ""))
    if status == 422:
        return Outcome(DEAD, SCHEMA, status, f"Alpine refused the body: {reason}")
    if status == 400:
        return Outcome(DEAD, HASH_MISMATCH, status, f"Alpine: {reason}")
    if status in (401, 403):
        return Outcome(PAUSE, AUTH, status, f"Alpine refused the API key ({status}): {reason}")
    if status == 404:
        return Outcome(PAUSE, NOT_FOUND, status, f"Alpine answered 404 at the signal endpoint: check ALPINE_API_URL ({reason})")
    if 300 <= status < 400:
        # Never followed: the key would go to whatever host the answer names,
        # and that host's 200 would mark the signal delivered. A redirect means
        # ALPINE_API_URL is not Alpine's address (like a 404): retrying each
        # delivery cannot help and dead would lose them, so pause until fixed.
        return Outcome(PAUSE, REDIRECT, status, redirect_reason(status, headers.get("Location")))
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status == 500:
        refused = alpine_would_refuse(payload)
        permanent = PERMANENT_500.search(reason) and not TRANSIENT_500.search(reason)
        if permanent:
            return Outcome(DEAD, REJECTED, status, f"Alpine cannot store this signal: {reason}")
        if refused:
            return Outcome(DEAD, REJECTED, status, f"Alpine cannot store this signal: {refused} (by Alpine's "
                                                   f"documented table rules; its answer was: {reason})")
        return Outcome(RETRY, SERVER_ERROR, status, f"Alpine: {reason}", retry_after=retry_after)
    if status == 408:
        return Outcome(RETRY, TIMEOUT, status, f"Alpine: {reason}", retry_after=retry_after)
    if status == 429:
        return Outcome(RETRY, THROTTLED, status, f"Alpine is throttling: {reason}", retry_after=retry_after)
    if status >= 500:
        return Outcome(RETRY, SERVER_ERROR, status, f"Alpine: {reason}", retry_after=retry_after)
    return Outcome(RETRY, UNEXPECTED, status, f"Unexpected answer {status}: {reason}", retry_after=retry_after)


class Sender:
    """A bounded pool of threads, each with its own keep-alive requests.Session."""

    def __init__(self, concurrency):
        self.concurrency = concurrency
        self._local = threading.local()
        self._sessions = []
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="alpine")

    def session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self):
        self.executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def post_signal(session, config, payload):
    """POST one body to Alpine and return its classified Outcome (never raises for HTTP trouble)."""
    started = datetime.now(UTC)
    clock = time.perf_counter()
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["X-API-Key"] = config.api_key
    try:
        response = session.post(config.signal_url(), data=json.dumps(payload), headers=headers,
                                timeout=(min(config.timeout, 5.0), config.timeout), allow_redirects=False)
        text = response.content[:BODY_KEEP_BYTES].decode("utf-8", errors="replace")
        try:
            data = response.json()
        except ValueError:
            data = None
        outcome = classify(response.status_code, data, text, payload, response.headers)
        # A redirect's body usually repeats its Location, which may hold a secret.
        outcome.body = mask_text(text) if outcome.error_class == REDIRECT else text
    except requests.Timeout as exc:
        outcome = Outcome(RETRY, TIMEOUT, 0, f"No answer from Alpine within {config.timeout:g} s ({type(exc).__name__})")
    except requests.ConnectionError as exc:
        outcome = Outcome(RETRY, CONNECTION, 0, f"Cannot reach Alpine: {_short(exc)}")
    except requests.RequestException as exc:
        outcome = Outcome(RETRY, CONNECTION, 0, f"Request to Alpine failed: {_short(exc)}")
    outcome.started_at = started
    outcome.finished_at = datetime.now(UTC)
    outcome.duration_ms = int((time.perf_counter() - clock) * 1000)
    return outcome


def _short(exc):
    # requests nests the cause several levels deep; its innermost words are the useful part.
    # Some of its errors quote the URL, which may hold a password: masked before it is stored.
    text = mask_text(exc)
    return text[-300:] if len(text) > 300 else text
