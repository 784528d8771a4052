"""test_alpine_sync's steps: configuration, health, key, and an optional test signal.

The key check POSTs an empty body. Alpine checks the key before the schema,
so it answers 401 to a refused key and 422 to an accepted one, and a 422 body
is never stored: the key is proven without writing anything to Alpine. The
same empty body with a made-up key tells whether Alpine checks keys at all.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import requests

from signalhub.secrets import mask_text, mask_url
from signals.ledger.hashing import canonical_timestamp, compute_hash
from sync import client
from sync.config import alpine_config
from sync.models import DeliveryAttempt

logger = logging.getLogger(__name__)

TEST_STRATEGY = "signalhub_connection_test"


@dataclass
class Step:
    name: str
    passed: bool
    found: str


def _post(config, body, key):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-API-Key"] = key
    # Never follow a redirect: it would carry the key to the host it names.
    return requests.post(config.signal_url(), json=body, headers=headers, timeout=(min(config.timeout, 5.0), config.timeout),
                         allow_redirects=False)


def _redirected(step, url, response):
    """Return a failed Step when ``response`` is a redirect, else None."""
    if not response.is_redirect and not 300 <= response.status_code < 400:
        return None
    return Step(step, False, f"{mask_url(url)}: " + client.redirect_reason(response.status_code,
                                                                            response.headers.get("Location")))


def check_health(config):
    try:
        response = requests.get(config.health_url(), timeout=(min(config.timeout, 5.0), config.timeout),
                                allow_redirects=False)
    except requests.RequestException as exc:
        return Step("health", False, f"cannot reach {mask_url(config.health_url())}: {mask_text(exc)}")
    redirected = _redirected("health", config.health_url(), response)
    if redirected:
        return redirected
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code == 200 and isinstance(data, dict) and data.get("status") == "healthy":
        return Step("health", True, f"{response.status_code} healthy ({data.get('service', 'Alpine')})")
    return Step("health", False, f"{mask_url(config.health_url())} answered {response.status_code}: "
                                 f"{mask_text(response.text[:200])}")


def check_key(config):
    try:
        response = _post(config, {}, config.api_key)
    except requests.RequestException as exc:
        return Step("key", False, f"cannot reach {mask_url(config.signal_url())}: {mask_text(exc)}")
    redirected = _redirected("key", config.signal_url(), response)
    if redirected:
        return redirected
    if response.status_code in (401, 403):
        detail = _detail(response)
        if not config.api_key:
            return Step("key", False, f"ARGO_API_KEY is not set and Alpine requires one ({detail})")
        return Step("key", False, f"Alpine refused the key ({response.status_code}: {detail})")
    if response.status_code == 404:
        return Step("key", False, f"{mask_url(config.signal_url())} answered 404: check ALPINE_API_URL")
    if response.status_code != 422:
        return Step("key", False, f"expected 422 to an empty body once the key is accepted, got "
                                  f"{response.status_code}: {mask_text(response.text[:200])}")
    try:
        probe = _post(config, {}, "signalhub-made-up-key-" + uuid.uuid4().hex)
    except requests.RequestException:
        probe = None
    if probe is not None and probe.status_code == 422:
        return Step("key", True, "accepted (nothing stored: an empty body is refused after the key check); note: "
                                 "Alpine also accepts a made-up key, so it has no key configured (development mode)")
    return Step("key", True, "accepted (nothing stored: an empty body is refused after the key check); "
                             "a made-up key is refused, so Alpine does check keys")


def send_test_signal(config):
    now = datetime.now(UTC).replace(microsecond=0)
    fields = {"signal_id": f"signalhub-connection-test-{uuid.uuid4().hex[:12]}", "symbol": "TEST", "action": "BUY",
              "entry_price": 1.0, "target_price": None, "stop_price": None, "confidence": 0.0,
              "strategy": TEST_STRATEGY, "timestamp": canonical_timestamp(now)}
    payload = {key: value for key, value in fields.items() if value is not None}
    payload.update(sha256=compute_hash(**fields), data_source="signalhub_connection_test", asset_type="test",
                   reasoning="SignalHub connection test from test_alpine_sync: not a trading signal, safe to delete.")
    with requests.Session() as session:
        outcome = client.post_signal(session, config, payload)
    DeliveryAttempt.objects.create(
        delivery=None, trigger=DeliveryAttempt.Trigger.TEST, started_at=outcome.started_at,
        finished_at=outcome.finished_at, duration_ms=outcome.duration_ms, status_code=outcome.status_code,
        error_class=outcome.error_class, error=outcome.reason if outcome.verdict != client.DELIVERED else "",
        response_body=outcome.body[:client.BODY_KEEP_BYTES])
    if outcome.verdict == client.DELIVERED:
        return Step("test signal", True, f"{outcome.status_code} {outcome.reason}: stored as Alpine id "
                                         f"{outcome.alpine_signal_id} (signal_id {payload['signal_id']}, "
                                         f"strategy {TEST_STRATEGY})")
    return Step("test signal", False, f"{outcome.status_code or 'no answer'}: {outcome.reason}")


def run_checks(*, send_test=False):
    """Return (config, [Step]) for the configured Alpine."""
    config = alpine_config()
    steps = []
    if not config.configured:
        steps.append(Step("configuration", False, "ALPINE_API_URL is not set: nothing to check"))
        return config, steps
    found = "complete" if config.api_key else "ARGO_API_KEY is not set (only an Alpine without a key accepts that)"
    if not config.sync_enabled:
        found += "; sync is off (ALPINE_SYNC_ENABLED=false): signals wait as pending until it is on"
    steps.append(Step("configuration", True, found))
    steps.append(check_health(config))
    steps.append(check_key(config))
    if send_test:
        if all(step.passed for step in steps):
            steps.append(send_test_signal(config))
        else:
            steps.append(Step("test signal", False, "not sent: an earlier step failed"))
    return config, steps


def _detail(response):
    try:
        return str(response.json().get("detail", response.text[:200]))
    except (ValueError, AttributeError):
        return response.text[:200]
