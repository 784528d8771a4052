"""Prepare a machine to run SignalHub: migrate (main and archive), cache table, staff roles, admin login, demo signals.

Safe to run again: each step does only what is missing, and the staff roles'
permissions are set again on every run.
"""

import os
import secrets
import stat

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from signalhub import roles

DEMO_MARKER = "demo_loaded"
CREDENTIALS_FILE = "admin_credentials"


class Command(BaseCommand):
    help = ("Migrate, create the cache table, the staff groups, the first admin login and, on a first run "
            "with debug on or with --demo, demo signals.")

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true",
                            help="Load demo signals on first run even with debug off (with debug on they load by default).")
        parser.add_argument("--demo-count", type=int, default=20_000, help="Demo signals loaded on first run (0 for none).")
        parser.add_argument("--demo-days", type=int, default=60)

    def handle(self, *args, demo, demo_count, demo_days, **options):
        # Databases, journals and the admin's credentials live here: the owner's alone.
        if not settings.DATA_DIR.exists():
            settings.DATA_DIR.mkdir(mode=0o700, parents=True)
        else:
            self._tighten_data_dir()
        call_command("migrate", interactive=False, verbosity=0)
        # The archive holds the same ledger tables (see signalhub.routers).
        call_command("migrate", database="archive", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        self._roles()
        self._admin_login()
        self._demo_signals(demo, demo_count, demo_days)

    def _tighten_data_dir(self):
        # Something else may have made it first (collectstatic, `mkdir -p`), with
        # the umask's 0755. Another user's directory is left to its owner.
        path = settings.DATA_DIR
        info = path.stat()
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077 and info.st_uid == os.getuid():
            path.chmod(0o700)
            self.stdout.write(f"Data directory {path}: mode {mode:04o} tightened to 0700.")

    def _roles(self):
        created = roles.ensure_roles()
        for name, was_created in created.items():
            self.stdout.write(f"Staff group \"{name}\": {'created' if was_created else 'permissions updated'}.")

    def _demo_signals(self, demo, count, days):
        marker = settings.DATA_DIR / DEMO_MARKER
        if not count:
            return
        if marker.exists():
            if demo:
                self.stdout.write(f"Demo signals were loaded before; delete {marker} to load them again.")
            return
        if not (demo or settings.DEBUG):
            # Made-up signals in a production ledger would be indistinguishable from real ones.
            self.stdout.write("No demo signals loaded: debug is off (pass --demo to load them).")
            return
        self.stdout.write(f"Loading {count} demo signals (first run only)...")
        call_command("generate_demo_signals", count=count, days=days, stdout=self.stdout)
        marker.write_text("demo signals loaded; delete this file to load them again\n")

    def _admin_login(self):
        User = get_user_model()
        credentials = settings.DATA_DIR / CREDENTIALS_FILE
        if User.objects.filter(is_superuser=True).exists():
            if credentials.exists():
                self._show_login(credentials)
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        # One transaction: a login whose password could not be kept is not created.
        with transaction.atomic():
            User.objects.create_superuser(username=username, email="", password=password)
            if generated:
                _write_credentials(credentials, username, password)
        if generated:
            self.stdout.write(self.style.SUCCESS(f"Created the admin login {username}."))
            self._show_login(credentials)
        else:
            self.stdout.write(self.style.SUCCESS(f"Created the admin login {username} (password from DJANGO_SUPERUSER_PASSWORD)"))


    def _show_login(self, credentials):
        """Print the kept login on a development machine; elsewhere only where it is kept."""
        if settings.DEBUG:
            # `make run` (debug on) is a developer's own terminal, and its promise is a
            # login to type. With debug off this output lands in a service's captured
            # log, so the password stays in the 0600 file.
            login = " / ".join(line.split(": ", 1)[-1] for line in credentials.read_text().splitlines())
            self.stdout.write(self.style.SUCCESS(f"Admin login: {login}  (kept in {credentials})"))
        else:
            self.stdout.write(f"Admin login: the generated password is in {credentials}")


def _write_credentials(path, username, password):
    """Write the generated login to a new file that only its owner can read, never through a link."""
    # A file left by an earlier login (whose superuser is gone) is stale.
    if path.is_symlink() or path.exists():
        path.unlink()
    try:
        # O_EXCL: the file is created here with mode 0600 from its first byte,
        # and a link planted at this path fails the call instead of being followed.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise CommandError(f"Cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as file:
        file.write(f"username: {username}\npassword: {password}\n")
