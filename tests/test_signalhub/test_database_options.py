"""DATABASE_URL's query options reach the driver (TLS, application_name, ...); SQLite's are reported, not passed."""

import subprocess
import sys

import pytest
from django.db import connection

from signalhub import checks
from signalhub.settings import IGNORED_DATABASE_OPTIONS, database_from_url
from tests.support import ROOT, backend_name, process_env


def test_postgres_url_options_are_merged_with_the_pool_options():
    config = database_from_url("postgres://u:p@db.internal:5432/signalhub?sslmode=verify-full"
                               "&sslrootcert=/etc/ssl/ca.pem&application_name=signalhub-web&connect_timeout=5"
                               "&target_session_attrs=read-write&options=-c%20statement_timeout%3D5000")
    options = config["OPTIONS"]
    assert options["sslmode"] == "verify-full" and options["sslrootcert"] == "/etc/ssl/ca.pem"
    assert options["application_name"] == "signalhub-web" and int(options["connect_timeout"]) == 5
    assert options["target_session_attrs"] == "read-write" and options["options"] == "-c statement_timeout=5000"
    assert options["pool"]["min_size"] == 1 and options["pool"]["max_size"] >= 1
    assert config["CONN_MAX_AGE"] == 0


def test_sqlite_url_options_are_reported_not_passed(settings):
    try:
        config = database_from_url("sqlite:////tmp/signalhub-options.sqlite3?timeout=1&cache=shared", alias="probe")
        assert set(config["OPTIONS"]) == {"init_command", "transaction_mode", "timeout"}
        assert config["OPTIONS"]["timeout"] == settings.SQLITE_BUSY_TIMEOUT
        settings.IGNORED_DATABASE_OPTIONS = dict(IGNORED_DATABASE_OPTIONS)
        warnings = [m for m in checks.private_file_checks() if m.id == "signalhub.W002"]
        assert len(warnings) == 1 and "probe" in warnings[0].msg and "cache, timeout" in warnings[0].msg
    finally:
        IGNORED_DATABASE_OPTIONS.pop("probe", None)


@pytest.mark.django_db(transaction=True)
def test_application_name_in_database_url_reaches_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no server to tell")
    env = process_env()
    name = backend_name("url-options")
    env["DATABASE_URL"] = f"{env['DATABASE_URL']}?application_name={name}&connect_timeout=10"
    env.pop("PGAPPNAME", None)  # only the URL may name the connection
    code = ("from django.db import connection\n"
            "with connection.cursor() as c:\n"
            "    c.execute('SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()')\n"
            "    print('APP=' + c.fetchone()[0])\n")
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"APP={name}" in result.stdout.splitlines()
