"""The sync app's system checks: Alpine's URL, key, lease and sync off, each by its id."""

import pytest
from django.core import checks as django_checks

from sync.checks import check_alpine_config, url_problem

KEY = "k" * 24


@pytest.fixture
def alpine_env(monkeypatch):
    for name in ("ALPINE_API_URL", "ARGO_API_KEY", "ALPINE_SYNC_ENABLED", "SIGNALHUB_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def ids(messages):
    return [message.id for message in messages]


def test_a_complete_configuration_raises_nothing(alpine_env):
    alpine_env.setenv("ALPINE_API_URL", "https://alpine.internal:8000")
    alpine_env.setenv("ARGO_API_KEY", KEY)
    assert check_alpine_config() == []


def test_a_url_without_http_is_e001(alpine_env):
    alpine_env.setenv("ALPINE_API_URL", "alpine.internal:8000")
    [error] = check_alpine_config()
    assert error.id == "sync.E001" and "must start with http:// or https://" in error.msg


@pytest.mark.parametrize("url, reason", [
    ("http://alpine internal", "white space"),
    ("http://:8000", "names no host"),
    ("http://alpine.internal:99999", "out of range"),
    ("http://alpine.internal/?x=1", "no query or fragment"),
])
def test_a_malformed_url_is_e002(alpine_env, url, reason):
    alpine_env.setenv("ALPINE_API_URL", url)
    alpine_env.setenv("ARGO_API_KEY", KEY)
    [error] = check_alpine_config()
    assert error.id == "sync.E002" and reason in error.msg
    assert url_problem(url)


def test_a_missing_key_while_sync_is_on_is_w001(alpine_env):
    alpine_env.setenv("ALPINE_API_URL", "http://alpine.internal")
    assert ids(check_alpine_config()) == ["sync.W001"]


def test_a_missing_key_while_sync_is_off_is_only_information(alpine_env):
    alpine_env.setenv("ALPINE_API_URL", "http://alpine.internal")
    alpine_env.setenv("ALPINE_SYNC_ENABLED", "false")
    [info] = check_alpine_config()
    assert info.id == "sync.I001" and info.level == django_checks.INFO
    assert "ALPINE_SYNC_ENABLED is false" in info.msg


def test_no_url_is_i001_sync_off(alpine_env):
    [info] = check_alpine_config()
    assert info.id == "sync.I001" and "ALPINE_API_URL is not set" in info.msg


def test_a_lease_too_short_for_the_timeout_is_w002(alpine_env, settings):
    alpine_env.setenv("ALPINE_API_URL", "http://alpine.internal")
    alpine_env.setenv("ARGO_API_KEY", KEY)
    settings.ALPINE_TIMEOUT, settings.SIGNALHUB_SYNC_LEASE_SECONDS = 10.0, 15.0
    [warning] = check_alpine_config()
    assert warning.id == "sync.W002"


def test_the_checks_run_with_manage_check(alpine_env):
    alpine_env.setenv("ALPINE_API_URL", "http://alpine internal")
    assert "sync.E002" in ids(django_checks.run_checks())
