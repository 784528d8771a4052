"""Run the web server and the django-q2 cluster together, in the foreground.

Ctrl-C (SIGINT) or SIGTERM stops both; if either exits, the other is stopped too.
With ``--alpine-stub PORT`` a local Alpine (sync.testing.stub) runs beside them and
delivery is pointed at it: a development demo only, since what the stub
stores is kept in memory and lost when it stops.
"""

import os
import secrets
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the web server and the django-q2 cluster; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="Address and port of the web server.")
        parser.add_argument("--alpine-stub", type=int, metavar="PORT", default=None,
                            help="Also run a local Alpine stub on this port and deliver to it (development only).")

    def handle(self, *args, addr, alpine_stub, **options):
        manage = [sys.executable, "manage.py"]
        env = dict(os.environ)
        children = {}
        if alpine_stub:
            key = secrets.token_urlsafe(24)
            # The key goes through the environment: a command-line argument is visible to every local user in ps.
            children["alpine stub"] = subprocess.Popen(
                [*manage, "run_alpine_stub", "--port", str(alpine_stub)], env={**env, "ALPINE_STUB_KEY": key})
            env.update(ALPINE_API_URL=f"http://127.0.0.1:{alpine_stub}", ARGO_API_KEY=key, ALPINE_SYNC_ENABLED="true")
            self.stdout.write(f"Delivering to the local Alpine stub at http://127.0.0.1:{alpine_stub} "
                              "(development only: it keeps what it receives in memory).")
        children["web"] = subprocess.Popen([*manage, "runserver", "--noreload", addr], env=env)
        # The cluster gets a process group of its own: on stop, SIGINT goes to the
        # whole group, so a worker in the middle of a repeating flush or delivery
        # task finishes its pass and returns instead of running out the minute
        # (see signalhub.schedules.repeat_for_a_minute); the sentinel ignores it.
        children["cluster"] = subprocess.Popen([*manage, "qcluster"], env=env, start_new_session=True)
        self.stdout.write(f"SignalHub on http://{addr}/admin/  (web pid {children['web'].pid}, "
                          f"cluster pid {children['cluster'].pid}); Ctrl-C stops {'all' if alpine_stub else 'both'}.")
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(child.poll() is None for child in children.values()):
                time.sleep(0.2)
        finally:
            for name, child in children.items():
                if child.poll() is None:
                    if name == "cluster":
                        os.killpg(child.pid, signal.SIGINT)
                    else:
                        child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            for name, child in children.items():
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.stderr.write(f"{name} did not stop in time; killing it")
                    if name == "cluster":
                        os.killpg(child.pid, signal.SIGKILL)
                    else:
                        child.kill()
        failed = {name: child.returncode for name, child in children.items()
                  if child.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)}
        if failed and not stopping:
            raise CommandError(f"stopped because a process exited: {failed}", returncode=1)
        self.stdout.write("SignalHub stopped.")
