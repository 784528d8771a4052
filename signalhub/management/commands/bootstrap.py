"""Prepare a machine to run SignalHub: migrate (main and archive), cache table, admin login, demo signals.

Safe to run again: each step does only what is missing.
"""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

DEMO_MARKER = "demo_loaded"
CREDENTIALS_FILE = "admin_credentials"


class Command(BaseCommand):
    help = "Migrate, create the cache table, the first admin login and demo signals (first run only)."

    def add_arguments(self, parser):
        parser.add_argument("--demo-count", type=int, default=20_000, help="Demo signals loaded on first run (0 for none).")
        parser.add_argument("--demo-days", type=int, default=60)

    def handle(self, *args, demo_count, demo_days, **options):
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        # The archive holds the same ledger tables (see signalhub.routers).
        call_command("migrate", database="archive", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        self._admin_login()
        marker = settings.DATA_DIR / DEMO_MARKER
        if demo_count and not marker.exists():
            self.stdout.write(f"Loading {demo_count} demo signals (first run only)...")
            call_command("generate_demo_signals", count=demo_count, days=demo_days, stdout=self.stdout)
            marker.write_text("demo signals loaded; delete this file to load them again\n")

    def _admin_login(self):
        import os

        User = get_user_model()
        credentials = settings.DATA_DIR / CREDENTIALS_FILE
        if User.objects.filter(is_superuser=True).exists():
            if credentials.exists():
                self.stdout.write(f"Admin login: see {credentials}")
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if generated:
            credentials.touch(mode=0o600)
            credentials.write_text(f"username: {username}\npassword: {password}\n")
            self.stdout.write(self.style.SUCCESS(
                f"Created the admin login  {username} / {password}  (also kept in {credentials})"))
        else:
            self.stdout.write(self.style.SUCCESS(f"Created the admin login {username} (password from DJANGO_SUPERUSER_PASSWORD)"))
