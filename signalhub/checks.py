"""Django system checks (``manage.py check``) for SignalHub's operational settings.

Ids: signalhub.E001 data directory, E002 archive location, E003 archive
database missing, E004 archive is the main database, E005 django-q2 timeout
not below its retry, E006 journal directory, W001 the data directory, a SQLite
database (or its -wal/-shm) or the secret key file that other local users
may read, W002
query options of a SQLite URL that are ignored. Alpine's settings (URL well
formed, key present when sync is on, lease against timeout) are the sync
app's own checks, sync.E001/E002/W001/W002/I001 in sync/checks.py: one set of
checks, not two.
"""

import os
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from signalhub.private_files import too_open

SQLITE_ENGINES = ("django.db.backends.sqlite3", "signalhub.backends.sqlite3")


def unusable_dir_reason(path):
    """Return why ``path`` cannot hold SignalHub's files, or None when it can (or can be created)."""
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            return f"{path} does not exist and cannot be created"
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by this user" if existing == path else (
            f"{path} does not exist and {existing} is not writable by this user")
    return None


@register(Tags.database, deploy=False)
def storage_checks(app_configs=None, **kwargs):
    errors = []
    reason = unusable_dir_reason(settings.DATA_DIR)
    if reason:
        errors.append(Error(f"The data directory is not usable: {reason}.",
                            hint="Set SIGNALHUB_DATA_DIR to a writable directory.", id="signalhub.E001"))
    reason = unusable_dir_reason(settings.SIGNALHUB_JOURNAL_DIR)
    if reason:
        errors.append(Error(f"The journal directory is not usable: {reason}; log_signal cannot keep any signal.",
                            hint="Set SIGNALHUB_JOURNAL_DIR to a writable directory on a local disk.",
                            id="signalhub.E006"))
    archive = settings.DATABASES.get("archive")
    if not archive:
        errors.append(Error("No 'archive' database is configured; archive_signals and restore_signals cannot run.",
                            hint="Keep signalhub.settings' archive block, or set SIGNALHUB_ARCHIVE_DATABASE_URL.",
                            id="signalhub.E003"))
        return errors
    if archive["ENGINE"] in SQLITE_ENGINES:
        reason = unusable_dir_reason(Path(archive["NAME"]).parent)
        if reason:
            errors.append(Error(f"The archive database's directory is not usable: {reason}.",
                                hint="Point SIGNALHUB_ARCHIVE_DATABASE_URL at a writable location.", id="signalhub.E002"))
    main = settings.DATABASES["default"]
    if all(archive.get(key) == main.get(key) for key in ("ENGINE", "NAME", "HOST", "PORT")):
        errors.append(Error("The archive database is the main database: archiving would delete what it copies.",
                            hint="Give SIGNALHUB_ARCHIVE_DATABASE_URL a database of its own.", id="signalhub.E004"))
    return errors


@register(Tags.compatibility)
def task_queue_checks(app_configs=None, **kwargs):
    q = settings.Q_CLUSTER
    timeout, retry = q.get("timeout"), q.get("retry")
    if timeout is not None and retry is not None and timeout >= retry:
        return [Error(f"The django-q2 task timeout ({timeout} s) is not below its retry ({retry} s): the broker "
                      f"would hand a still-running task to a second worker.",
                      hint="Set SIGNALHUB_Q_TIMEOUT below SIGNALHUB_Q_RETRY.", id="signalhub.E005")]
    return []


def _private_paths():
    """Return the local files that hold secrets or the ledger (the data directory is checked on its own)."""
    paths = [Path(settings.DATA_DIR) / "secret_key"]
    for database in settings.DATABASES.values():
        if database.get("ENGINE") in SQLITE_ENGINES and not str(database.get("NAME", "")).startswith("file:"):
            name = str(database["NAME"])
            paths += [Path(name), Path(f"{name}-wal"), Path(f"{name}-shm")]
    return paths


@register(Tags.security, deploy=False)
def private_file_checks(app_configs=None, **kwargs):
    messages = []
    mode = too_open(settings.DATA_DIR)
    if mode is not None:
        # Made by something other than bootstrap (collectstatic, `mkdir -p`): others
        # may list it, and read any file in it whose own mode is too open.
        messages.append(Warning(
            f"The data directory {settings.DATA_DIR} has mode {mode:04o}: other local users may list it and "
            f"reach the databases, journals and credentials in it.",
            hint=f"chmod 700 {settings.DATA_DIR} (manage.py bootstrap does it)", id="signalhub.W001"))
    for path in _private_paths():
        mode = too_open(path)
        if mode is not None:
            # Reported, not changed: an operator may have opened it to a group on purpose.
            messages.append(Warning(
                f"{path} has mode {mode:04o}: other local users may read it (sessions, password hashes, the "
                f"secret key or the ledger).", hint=f"chmod 600 {path}",
                id="signalhub.W001"))
    for alias, names in sorted(getattr(settings, "IGNORED_DATABASE_OPTIONS", {}).items()):
        messages.append(Warning(
            f"The {alias} SQLite database URL has query options SignalHub does not pass on: {', '.join(names)}.",
            hint="Remove them; SQLite's timeout is SIGNALHUB_SQLITE_BUSY_TIMEOUT.", id="signalhub.W002"))
    return messages
