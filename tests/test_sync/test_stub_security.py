"""The local Alpine's own doors: its extra endpoints need the key, its sockets time out, its key stays out of ps."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sync.testing.stub import HEALTH_PATH, MAX_BODY_BYTES, SIGNAL_PATH, AlpineStub
from tests.support import ROOT, descendants, free_port, http_status, process_env, wait_for

KEY = "stub-security-key-0123456789"
VECTOR_BODY = {"signal_id": "SEC-1", "symbol": "AAPL", "action": "BUY", "entry_price": 100.0, "confidence": 80.0,
               "timestamp": "2025-11-18T14:30:00+00:00", "sha256": "0" * 64}


def ask(stub, method, path, key=None, **kwargs):
    headers = {"X-API-Key": key} if key is not None else {}
    return requests.request(method, stub.url + path, headers=headers, timeout=5, **kwargs)


@pytest.mark.parametrize("method,path,body", [("GET", "/_stub/signals", None), ("GET", "/_stub/stats", None),
                                              ("POST", "/_stub/faults", {"error_rate": 1.0})])
def test_the_stubs_extra_endpoints_need_the_key(method, path, body):
    with AlpineStub(key=KEY) as stub:
        missing = ask(stub, method, path, json=body)
        wrong = ask(stub, method, path, key="not-the-key", json=body)
        assert (missing.status_code, missing.json()) == (401, {"detail": "Missing X-API-Key header"})
        assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid API key"})
        assert stub.faults.error_rate == 0.0  # a refused request changed nothing
        assert ask(stub, method, path, key=KEY, json=body).status_code == 200
        assert requests.get(stub.url + HEALTH_PATH, timeout=5).status_code == 200  # liveness stays open


@pytest.mark.parametrize("body,named", [
    (b"{not json", "Invalid fault settings"),
    (b"[1, 2]", "JSON object"),
    (b'{"error_rate": "all of them"}', "error_rate"),
    (b'{"slow_seconds": -1}', "slow_seconds"),
    (b'{"retry_after": 5}', "retry_after"),
    (b'{"no_such_fault": 1}', "no_such_fault"),
    (b"[" * 100_000, "Invalid fault settings"),
])
def test_bad_fault_settings_are_refused_naming_the_field_and_the_stub_keeps_working(body, named):
    with AlpineStub(key=KEY) as stub:
        answer = ask(stub, "POST", "/_stub/faults", key=KEY, data=body)
        assert answer.status_code == 400 and named in answer.json()["detail"]
        assert stub.faults.error_rate == 0.0 and stub.faults.retry_after == "1"
        # The next signal is still answered by the contract (422: the hash vector is not filled in).
        assert ask(stub, "POST", SIGNAL_PATH, key=KEY, json={"symbol": "AAPL"}).status_code == 422


def test_a_body_over_the_limit_or_a_bad_length_is_refused_without_reading_it():
    with AlpineStub(key=KEY) as stub:
        host, port = stub.server.server_address[:2]
        for length, status in ((MAX_BODY_BYTES + 1, b"413"), ("-5", b"400"), ("ten", b"400")):
            with socket.create_connection((host, port), timeout=10) as raw:
                raw.sendall(f"POST {SIGNAL_PATH} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
                            f"Content-Length: {length}\r\n\r\n".encode())
                assert raw.recv(100).split(b" ")[1] == status


def read_until_closed(sock):
    """Return what the server sent before closing ``sock`` (socket.timeout if it never does)."""
    received = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return received
        received += chunk


@pytest.mark.parametrize("sends", [b"", b"POST " + SIGNAL_PATH.encode() + b" HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"])
def test_a_silent_client_is_dropped_and_the_others_are_served_meanwhile(sends):
    with AlpineStub(key=KEY, socket_timeout=0.5) as stub:
        host, port = stub.server.server_address[:2]
        with socket.create_connection((host, port), timeout=10) as silent:
            silent.sendall(sends)
            assert ask(stub, "GET", "/_stub/stats", key=KEY).status_code == 200
            # The stub closes the connection after its timeout; without one this recv waits 10 s and fails.
            assert b"200 OK" not in read_until_closed(silent)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, databases=["default", "archive"])
def test_serve_hands_the_stub_its_key_through_the_environment_not_the_command_line(tmp_path):
    web, stub_port = free_port(), free_port()
    env = process_env(SIGNALHUB_Q_CLUSTER_NAME=f"signalhub-test-stubkey-{os.getpid()}", SIGNALHUB_Q_WORKERS="1",
                      DJANGO_DEBUG="1", DJANGO_ALLOWED_HOSTS="127.0.0.1")
    env.pop("ALPINE_STUB_KEY", None)
    log = (tmp_path / "serve.log").open("w+")
    serve = subprocess.Popen([sys.executable, "manage.py", "serve", "--addr", f"127.0.0.1:{web}", "--alpine-stub",
                              str(stub_port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        health = f"http://127.0.0.1:{stub_port}{HEALTH_PATH}"
        answered = wait_for(lambda: serve.poll() is not None or http_status(health) == 200, timeout=60, interval=0.2)
        assert answered and serve.poll() is None, "the stub never answered"
        stubs = [pid for pid in descendants(serve.pid)
                 if b"run_alpine_stub" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(stubs) == 1
        environ = dict(item.split(b"=", 1) for item in Path(f"/proc/{stubs[0]}/environ").read_bytes().split(b"\0")
                       if b"=" in item)
        key = environ[b"ALPINE_STUB_KEY"]
        assert len(key) >= 24
        for pid in [serve.pid, *descendants(serve.pid)]:
            try:
                assert key not in Path(f"/proc/{pid}/cmdline").read_bytes(), f"the key is in the arguments of {pid}"
            except FileNotFoundError:
                continue  # a worker that has already been replaced
        stats = f"http://127.0.0.1:{stub_port}/_stub/stats"
        assert requests.get(stats, timeout=5).status_code == 401
        assert requests.get(stats, headers={"X-API-Key": key.decode()}, timeout=5).status_code == 200
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        log.seek(0)
        output = log.read()
    assert key.decode() not in output
    assert serve.returncode == 0, output[-2000:]
