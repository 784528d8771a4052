"""Run the web server and the django-q2 cluster together, in the foreground.

Ctrl-C (SIGINT) or SIGTERM stops both; if either exits, the other is stopped too.
"""

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the web server and the django-q2 cluster; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="Address and port of the web server.")

    def handle(self, *args, addr, **options):
        manage = [sys.executable, "manage.py"]
        children = {
            "web": subprocess.Popen([*manage, "runserver", "--noreload", addr]),
            "cluster": subprocess.Popen([*manage, "qcluster"]),
        }
        self.stdout.write(f"SignalHub on http://{addr}/admin/  (web pid {children['web'].pid}, "
                          f"cluster pid {children['cluster'].pid}); Ctrl-C stops both.")
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
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            for name, child in children.items():
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.stderr.write(f"{name} did not stop in time; killing it")
                    child.kill()
        failed = {name: child.returncode for name, child in children.items()
                  if child.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)}
        if failed and not stopping:
            raise CommandError(f"stopped because a process exited: {failed}", returncode=1)
        self.stdout.write("SignalHub stopped.")
