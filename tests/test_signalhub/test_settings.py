"""Settings: production checks, typed environment readers, migrations in step with the models."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from signalhub import env

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, **extra_env):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    environ.update(extra_env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_reports_no_errors_with_production_settings(tmp_path):
    result = run_manage(
        "check", "--deploy", "--fail-level", "ERROR",
        DJANGO_DEBUG="0", DJANGO_SECRET_KEY="k" * 20 + "-production-secret-key-with-enough-entropy-1234567890",
        DJANGO_ALLOWED_HOSTS="signals.example.com", SIGNALHUB_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


def test_missing_secret_key_without_debug_fails_naming_the_variable(tmp_path):
    result = run_manage("check", DJANGO_DEBUG="0", SIGNALHUB_DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_debug_generates_a_development_key_once(tmp_path):
    first = run_manage("check", DJANGO_DEBUG="1", SIGNALHUB_DATA_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "secret_key"
    key = key_file.read_text()
    assert len(key) >= 50 and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert run_manage("check", DJANGO_DEBUG="1", SIGNALHUB_DATA_DIR=str(tmp_path)).returncode == 0
    assert key_file.read_text() == key


def test_bad_boolean_in_the_environment_names_the_variable(tmp_path):
    result = run_manage("check", DJANGO_DEBUG="maybe", SIGNALHUB_DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr


@pytest.mark.parametrize("reader,raw,message", [
    (lambda: env.env_int("X_TEST", 1), "ten", "X_TEST='ten' is not a valid int"),
    (lambda: env.env_int("X_TEST", 1, minimum=2), "1", "must be at least 2"),
    (lambda: env.env_float("X_TEST", 1.0), "nan", "must be a finite number"),
    (lambda: env.env_choice("X_TEST", "a", ("a", "b")), "c", "must be one of: a, b"),
])
def test_typed_readers_raise_improperly_configured(monkeypatch, reader, raw, message):
    monkeypatch.setenv("X_TEST", raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        reader()


def test_typed_readers_use_defaults_and_parse_values(monkeypatch):
    monkeypatch.delenv("X_TEST", raising=False)
    assert env.env_int("X_TEST", 7) == 7
    monkeypatch.setenv("X_TEST", "a, b,,c")
    assert env.env_list("X_TEST") == ["a", "b", "c"]
    monkeypatch.setenv("X_TEST", "off")
    assert env.env_bool("X_TEST", True) is False


@pytest.mark.django_db(databases=["default", "archive"])
def test_migrations_are_in_step_with_the_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_database_runs_with_the_per_engine_options():
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
            assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
        else:
            assert connection.vendor == "postgresql"
            assert connection.pool is not None
