"""A redirect from Alpine is never followed: the key stays with ALPINE_API_URL's host.

Two real HTTP servers on loopback: the configured "Alpine" answers 307 with a
Location on a second server, which records every request it gets and would
answer as Alpine does when storing a signal.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from sync import client
from sync.delivery import handle_one_batch
from sync.models import Delivery, DeliveryAttempt, Destination
from sync.outbox import enqueue_deliveries
from tests.factories import make_signal

pytestmark = pytest.mark.django_db

KEY = "redirect-test-key-0123456789"
LOCATION_PASSWORD = "location-pw-s3cret"


class Server:
    """A loopback HTTP server answering every request with ``answer(handler) -> (status, headers, body)``."""

    def __init__(self, answer):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                status, headers, body = answer(self)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def stored(handler):
    # What Alpine answers when it stores a signal; also "healthy" for the health check.
    return 201, {"Content-Type": "application/json"}, json.dumps(
        {"status": "healthy" if handler.command == "GET" else "created", "alpine_signal_id": "42"}).encode()


@pytest.fixture
def redirected(monkeypatch, fast_sync):
    """(alpine, target): ALPINE_API_URL answers 307 to the same path on ``target``, with a password in the Location."""
    with Server(stored) as target:
        host = target.url.removeprefix("http://")

        def redirect(handler):
            location = f"http://someone:{LOCATION_PASSWORD}@{host}{handler.path}?token=tok-s3cret"
            return 307, {"Location": location}, f"Moved to {location}".encode()

        with Server(redirect) as alpine:
            monkeypatch.setenv("ALPINE_API_URL", alpine.url)
            monkeypatch.setenv("ARGO_API_KEY", KEY)
            monkeypatch.delenv("ALPINE_SYNC_ENABLED", raising=False)
            monkeypatch.delenv("SIGNALHUB_CONFIG_FILE", raising=False)
            yield alpine, target


def test_a_307_is_not_followed_and_pauses_delivery_with_the_reason(redirected):
    alpine, target = redirected
    signal = make_signal()
    enqueue_deliveries([signal.signal_id])

    handle_one_batch()

    assert target.requests == []  # the key never reached the other host
    assert [r["headers"].get("X-API-Key") for r in alpine.requests] == [KEY]
    row = Delivery.objects.get(signal=signal)
    assert row.state != Delivery.State.DELIVERED and row.delivered_at is None
    assert row.error_class == client.REDIRECT and row.last_status_code == 307
    attempt = DeliveryAttempt.objects.get(delivery=row)
    assert (attempt.status_code, attempt.error_class) == (307, client.REDIRECT)
    assert "redirect" in attempt.error and "ALPINE_API_URL" in attempt.error
    destination = Destination.objects.alpine()
    assert destination.is_paused()
    for text in (attempt.error, attempt.response_body, row.last_error, destination.last_error):
        assert LOCATION_PASSWORD not in text and "tok-s3cret" not in text


def test_test_alpine_sync_fails_on_a_redirect_and_sends_nothing_to_its_target(redirected):
    alpine, target = redirected
    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("test_alpine_sync", "--send-test-signal", stdout=out)

    assert error.value.returncode == 1
    assert target.requests == []
    assert "FAIL  health" in out.getvalue() and "FAIL  key" in out.getvalue()
    assert "307" in out.getvalue() and "does not follow" in out.getvalue()
    assert LOCATION_PASSWORD not in out.getvalue() and "tok-s3cret" not in out.getvalue()
    assert KEY not in out.getvalue()
