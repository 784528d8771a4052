import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from sync.config import alpine_config, mask_secret

KEY = "file-key-abcdefghijklmnop"


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("ALPINE_API_URL", "ARGO_API_KEY", "ALPINE_SYNC_ENABLED", "SIGNALHUB_CONFIG_FILE", "ALPINE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def config_file(tmp_path, clean_env):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"alpine": {"api_url": "http://file.example:9000/", "api_key": KEY, "sync_enabled": False}}))
    clean_env.setenv("SIGNALHUB_CONFIG_FILE", str(path))
    return path


def test_defaults_mean_sync_off_and_say_why(clean_env):
    config = alpine_config()
    assert (config.api_url, config.api_key, config.sync_enabled, config.active) == ("", "", True, False)
    assert config.off_reason == "sync off: ALPINE_API_URL is not set"
    assert set(config.sources.values()) == {"default"}


def test_config_file_block_is_read_with_its_source(config_file):
    config = alpine_config()
    assert (config.api_url, config.api_key, config.sync_enabled) == ("http://file.example:9000", KEY, False)
    assert config.sources == {"api_url": "config file", "api_key": "config file", "sync_enabled": "config file",
                              "timeout": "default"}


def test_environment_wins_over_the_file(config_file, clean_env):
    clean_env.setenv("ALPINE_API_URL", "http://env.example")
    clean_env.setenv("ALPINE_SYNC_ENABLED", "yes")
    config = alpine_config()
    assert (config.api_url, config.sync_enabled, config.api_key) == ("http://env.example", True, KEY)
    assert config.sources["api_url"] == "environment" and config.sources["api_key"] == "config file"


def test_values_are_read_at_call_time(clean_env):
    clean_env.setenv("ALPINE_API_URL", "http://one.example")
    assert alpine_config().api_url == "http://one.example"
    clean_env.setenv("ALPINE_API_URL", "http://two.example")
    assert alpine_config().api_url == "http://two.example"


def test_bad_values_name_the_setting(clean_env, tmp_path):
    clean_env.setenv("ALPINE_API_URL", "ftp://nope")
    with pytest.raises(ImproperlyConfigured, match="ALPINE_API_URL"):
        alpine_config()
    clean_env.setenv("ALPINE_API_URL", "http://ok.example")
    clean_env.setenv("ALPINE_SYNC_ENABLED", "maybe")
    with pytest.raises(ImproperlyConfigured, match="ALPINE_SYNC_ENABLED"):
        alpine_config()
    clean_env.delenv("ALPINE_SYNC_ENABLED")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    clean_env.setenv("SIGNALHUB_CONFIG_FILE", str(broken))
    with pytest.raises(ImproperlyConfigured, match="SIGNALHUB_CONFIG_FILE"):
        alpine_config()


def test_the_key_is_masked_everywhere_it_is_shown(config_file):
    config = alpine_config()
    assert mask_secret(KEY) == "fi****op (25 characters)"
    assert mask_secret("short") == "**** (5 characters)"
    assert mask_secret("") == "(not set)"
    assert KEY not in repr(config)
    assert all(KEY not in str(row) for row in config.describe())
