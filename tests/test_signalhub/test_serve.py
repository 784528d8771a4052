"""`manage.py serve` (what `make run` starts): web and cluster together, both stopped by one Ctrl-C."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import process_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, databases=["default", "archive"])]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid):
    """Return the pids of every process below ``pid`` (read from /proc)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_ctrl_c_stops_the_web_server_and_the_cluster(tmp_path):
    port = free_port()
    env = process_env(SIGNALHUB_Q_CLUSTER_NAME=f"signalhub-test-serve-{os.getpid()}", SIGNALHUB_Q_WORKERS="2",
                      DJANGO_DEBUG="1", DJANGO_ALLOWED_HOSTS="127.0.0.1")
    log = (tmp_path / "serve.log").open("w+")
    serve = subprocess.Popen([sys.executable, "manage.py", "serve", "--addr", f"127.0.0.1:{port}"], cwd=ROOT,
                             env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        status = None
        for _ in range(120):
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=2).status
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200
        # The web server can answer before the cluster has started its workers: wait for them.
        deadline = time.monotonic() + 60
        processes = descendants(serve.pid)
        while len(processes) < 4 and time.monotonic() < deadline:  # web, the cluster and its sentinel, workers...
            time.sleep(0.2)
            processes = descendants(serve.pid)
        assert len(processes) >= 4, f"serve started only {processes}"

        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in processes):
            time.sleep(0.2)
        left = [pid for pid in processes if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
        assert not left, f"still running after serve stopped: {left}"
    finally:
        if serve.poll() is None:
            serve.kill()
        log.seek(0)
        output = log.read()
    assert "SignalHub stopped." in output, output[-2000:]
