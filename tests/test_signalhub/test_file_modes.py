"""Only SignalHub's user may read its data: the data directory 0700, databases, key and locks 0600."""

import os
import stat
import subprocess
import sys

import pytest

from signalhub import checks
from signalhub.private_files import create_private_file, make_private_dir
from tests.support import ROOT


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def fresh_env(data_dir):
    """The environment of a first run on a machine: no database configured, debug on, no key yet."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DATABASE_URL", "SIGNALHUB_", "DJANGO_", "PG"))}
    env.update(SIGNALHUB_DATA_DIR=str(data_dir), DJANGO_DEBUG="1", DJANGO_SETTINGS_MODULE="signalhub.settings",
               PYTHONUNBUFFERED="1")
    return env


def run_manage(*args, env):
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_a_first_migrate_creates_a_private_data_dir_databases_key_and_locks(tmp_path):
    os.chmod(tmp_path, 0o755)  # the parent stays as it was; only what SignalHub creates is private
    data_dir = tmp_path / "fresh" / "data"
    env = fresh_env(data_dir)

    run_manage("migrate", "--no-input", env=env)
    run_manage("migrate", "--database", "archive", "--no-input", env=env)
    run_manage("shell", "-c", "from signalhub.locks import command_lock\nwith command_lock('file-modes'):\n    pass",
               env=env)

    assert mode(data_dir) == 0o700 and mode(data_dir.parent) == 0o700
    assert mode(data_dir / "secret_key") == 0o600
    assert mode(data_dir / "locks") == 0o700 and mode(data_dir / "locks" / "file-modes.lock") == 0o600
    databases = [data_dir / "signalhub.sqlite3", data_dir / "signalhub_archive.sqlite3"]
    for database in databases:
        assert database.stat().st_size > 0  # SQLite wrote its schema into the file created 0600
        for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
            if path.exists():  # -wal/-shm exist while a connection is open or after an unclean close
                assert mode(path) == 0o600, path
    # Nothing in the data directory is open to other users.
    for path in data_dir.rglob("*"):
        assert mode(path) & 0o077 == 0, f"{path} is {mode(path):o}"

    # The system check has nothing to say about what SignalHub created itself.
    result = run_manage("check", "--fail-level", "WARNING", env=env)
    assert "signalhub.W001" not in result.stdout + result.stderr


def test_wal_and_shm_are_created_with_the_databases_mode(tmp_path):
    # SQLite gives -wal/-shm the database file's mode: checked while a connection holds them open.
    import sqlite3

    database = tmp_path / "probe.sqlite3"
    create_private_file(database)
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES (1)")
        connection.commit()
        assert mode(database.with_name("probe.sqlite3-wal")) == 0o600
        assert mode(database.with_name("probe.sqlite3-shm")) == 0o600
    finally:
        connection.close()


def test_create_private_file_refuses_to_follow_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    link = tmp_path / "signalhub.sqlite3"
    link.symlink_to(target)
    assert create_private_file(link) is False and not target.exists()


# The check only reads DATABASES; no connection is opened to the overridden entry.
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_an_existing_readable_database_or_key_is_a_warning_not_changed(settings, tmp_path):
    make_private_dir(tmp_path / "data")
    database = tmp_path / "data" / "old.sqlite3"
    database.write_bytes(b"")
    os.chmod(database, 0o644)
    (tmp_path / "data" / "secret_key").write_text("k")
    os.chmod(tmp_path / "data" / "secret_key", 0o640)
    settings.DATA_DIR = tmp_path / "data"
    settings.DATABASES = {**settings.DATABASES, "default": {**settings.DATABASES["default"],
                                                            "ENGINE": "signalhub.backends.sqlite3", "NAME": str(database)}}

    warnings = [m for m in checks.private_file_checks() if m.id == "signalhub.W001"]

    assert sorted(w.msg.split(" has mode")[0] for w in warnings) == sorted([str(database),
                                                                            str(tmp_path / "data" / "secret_key")])
    assert any("0644" in w.msg and w.hint == f"chmod 600 {database}" for w in warnings)
    assert mode(database) == 0o644  # reported, not changed
