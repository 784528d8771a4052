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


def test_unusable_journal_directory_is_e006(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.SIGNALHUB_JOURNAL_DIR = blocker / "journal"
    [error] = checks.storage_checks()
    assert error.id == "signalhub.E006" and "log_signal cannot keep any signal" in error.msg


def test_journal_directory_that_can_be_created_is_fine(settings, tmp_path):
    settings.SIGNALHUB_JOURNAL_DIR = tmp_path / "not-yet" / "journal"
    assert checks.storage_checks() == []


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


@pytest.fixture
def alpine_env(monkeypatch):
    for name in ("ALPINE_API_URL", "ARGO_API_KEY", "ALPINE_SYNC_ENABLED", "SIGNALHUB_CONFIG_FILE", "ALPINE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def config_report(*args):
    out = StringIO()
    try:
        call_command("check_signal_config", "--json", *args, stdout=out)
        code = 0
    except CommandError as error:
        code = error.returncode
    report = json.loads(out.getvalue())
    return code, {entry["name"]: entry for entry in report["settings"]}, report["problems"]


def test_alpine_settings_show_their_real_sources_and_the_key_masked(alpine_env, tmp_path):
    key = "file-key-abcdefghijklmnop"
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"alpine": {"api_url": "http://file.example:9000", "api_key": key}}))
    alpine_env.setenv("SIGNALHUB_CONFIG_FILE", str(path))
    alpine_env.setenv("ALPINE_SYNC_ENABLED", "true")

    code, entries, problems = config_report()

    assert code == 0 and problems == []
    assert entries["ALPINE_API_URL"]["value"] == "http://file.example:9000"
    assert entries["ALPINE_API_URL"]["source"] == "config file"
    assert entries["ARGO_API_KEY"]["source"] == "config file"
    assert entries["ARGO_API_KEY"]["value"] == "fi****op (25 characters)"
    assert entries["ALPINE_SYNC_ENABLED"]["source"] == "environment"
    assert entries["ALPINE_TIMEOUT"]["source"] == "default"
    assert entries["SIGNALHUB_CONFIG_FILE"] == {**entries["SIGNALHUB_CONFIG_FILE"], "value": str(path), "source": "environment"}
    assert entries["SIGNALHUB_JOURNAL_DIR"]["source"] == "default"
    assert entries["SIGNALHUB_SYNC_BATCH_SIZE"]["value"] == "100"
    assert entries["SIGNALHUB_MONITOR_JOURNAL_MAX_AGE"]["value"] == "60.0"


def test_environment_wins_and_the_key_never_shows(alpine_env):
    key = "env-key-0123456789abcdefXYZ"
    alpine_env.setenv("ALPINE_API_URL", "https://alpine.internal")
    alpine_env.setenv("ARGO_API_KEY", key)
    alpine_env.setenv("SIGNALHUB_JOURNAL_FSYNC", "always")
    out = StringIO()
    call_command("check_signal_config", stdout=out)
    assert key not in out.getvalue()
    code, entries, _ = config_report()
    assert (entries["ALPINE_API_URL"]["source"], entries["ARGO_API_KEY"]["source"]) == ("environment", "environment")
    assert entries["SIGNALHUB_JOURNAL_FSYNC"]["source"] == "environment"


def test_missing_alpine_settings_get_setup_help(alpine_env):
    out = StringIO()
    call_command("check_signal_config", stdout=out)
    assert "- ALPINE_API_URL: set ALPINE_API_URL (or alpine.api_url in SIGNALHUB_CONFIG_FILE)" in out.getvalue()

    alpine_env.setenv("ALPINE_API_URL", "http://alpine.internal")
    code, entries, problems = config_report()
    assert "set ARGO_API_KEY" in entries["ARGO_API_KEY"]["help"]
    assert code == 0 and [p["id"] for p in problems] == ["sync.W001"]  # a warning: shown, not a failure


def test_a_bad_alpine_url_fails_the_command(alpine_env):
    alpine_env.setenv("ALPINE_API_URL", "ftp://alpine.internal")
    code, entries, problems = config_report()
    assert code == 1 and [p["id"] for p in problems] == ["sync.E001"]
    assert "must start with http://" in entries["ALPINE_API_URL"]["help"]
