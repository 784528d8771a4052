"""`manage.py serve` (what `make run` starts): web and cluster together, both stopped by one Ctrl-C."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import descendants, free_port, http_status, process_env, wait_for

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, databases=["default", "archive"])]


def test_ctrl_c_stops_the_web_server_and_the_cluster(tmp_path):
    port = free_port()
    env = process_env(SIGNALHUB_Q_CLUSTER_NAME=f"signalhub-test-serve-{os.getpid()}", SIGNALHUB_Q_WORKERS="2",
                      DJANGO_DEBUG="1", DJANGO_ALLOWED_HOSTS="127.0.0.1")
    log = (tmp_path / "serve.log").open("w+")
    serve = subprocess.Popen([sys.executable, "manage.py", "serve", "--addr", f"127.0.0.1:{port}"], cwd=ROOT,
                             env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: http_status(f"http://127.0.0.1:{port}/admin/login/") == 200, timeout=60, interval=0.5)
        # The web server can answer before the cluster has started its workers: wait for them.
        # Web, the cluster and its sentinel, workers...
        wait_for(lambda: len(descendants(serve.pid)) >= 4, timeout=60, interval=0.2)
        processes = descendants(serve.pid)
        assert len(processes) >= 4, f"serve started only {processes}"

        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=60) == 0
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in processes), timeout=10, interval=0.2)
        left = [pid for pid in processes if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
        assert not left, f"still running after serve stopped: {left}"
    finally:
        if serve.poll() is None:
            serve.kill()
        log.seek(0)
        output = log.read()
    assert "SignalHub stopped." in output, output[-2000:]
