"""System checks (signalhub.E00x) fire on bad settings; check_signal_config shows sources and masks secrets."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from signalhub import checks

pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def ids(messages):
    return [message.id for message in messages]


def test_good_settings_raise_nothing():
    assert checks.storage_checks() == [] and checks.task_queue_checks() == []


def test_unusable_data_directory_is_e001(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.DATA_DIR = blocker / "data"
    assert ids(checks.storage_checks()) == ["signalhub.E001"]


def test_unusable_archive_location_is_e002(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.DATABASES = {**settings.DATABASES, "archive": {
        "ENGINE": "django.db.backends.sqlite3", "NAME": str(blocker / "archive.sqlite3")}}
    assert ids(checks.storage_checks()) == ["signalhub.E002"]


def test_missing_archive_database_is_e003(settings):
    settings.DATABASES = {"default": settings.DATABASES["default"]}
    assert ids(checks.storage_checks()) == ["signalhub.E003"]


def test_archive_that_is_the_main_database_is_e004(settings):
    settings.DATABASES = {**settings.DATABASES, "archive": dict(settings.DATABASES["default"])}
    assert "signalhub.E004" in ids(checks.storage_checks())


@pytest.mark.parametrize("timeout, retry", [(360, 360), (600, 360)])
def test_task_timeout_not_below_retry_is_e005(settings, timeout, retry):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": timeout, "retry": retry}
    [error] = checks.task_queue_checks()
    assert error.id == "signalhub.E005" and f"({timeout} s) is not below its retry ({retry} s)" in error.msg


def test_manage_check_reports_the_ids(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 900, "retry": 60}
    with pytest.raises(Exception) as error:
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert "signalhub.E005" in str(error.value)


def test_config_shows_sources_and_masks_secrets(settings, monkeypatch):
    monkeypatch.setenv("SIGNALHUB_Q_WORKERS", "2")
    monkeypatch.delenv("SIGNALHUB_MONITOR_DB_MAX_MB", raising=False)
    settings.DATABASE_URL = "postgres://signalhub:hunter2-very-secret@db.internal:5432/signalhub"
    out = StringIO()
    call_command("check_signal_config", "--json", stdout=out)
    report = {entry["name"]: entry for entry in json.loads(out.getvalue())["settings"]}

    assert report["SIGNALHUB_Q_WORKERS"]["source"] == "environment"
    assert report["SIGNALHUB_MONITOR_DB_MAX_MB"] == {**report["SIGNALHUB_MONITOR_DB_MAX_MB"], "source": "default", "value": "1000"}
    assert report["DATABASE_URL"]["value"] == "postgres://signalhub:********@db.internal:5432/signalhub"
    assert "hunter2" not in out.getvalue()
    assert settings.SECRET_KEY not in out.getvalue()


def test_config_gives_setup_help_and_fails_on_a_bad_setting(settings, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 900, "retry": 60}
    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("check_signal_config", stdout=out)
    assert error.value.returncode == 1
    assert "Setup help:" in out.getvalue()
    assert "- DJANGO_SECRET_KEY: development key from the data directory" in out.getvalue()
    assert "- signalhub.E005:" in out.getvalue()
