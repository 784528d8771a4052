"""Where Alpine is and whether to deliver: the legacy names, read at call time.

The environment (ALPINE_API_URL, ARGO_API_KEY, ALPINE_SYNC_ENABLED) wins over
the ``alpine`` block (api_url, api_key, sync_enabled) of the JSON file named by
SIGNALHUB_CONFIG_FILE, which wins over the defaults. Nothing is copied at
import, so a corrected key is used by the next pass.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from signalhub.env import env_bool, parse_bool
from signalhub.secrets import mask_secret, mask_url

logger = logging.getLogger(__name__)

ENVIRONMENT, CONFIG_FILE, DEFAULT, SETTINGS = "environment", "config file", "default", "settings"

# setting name -> (environment variable, key in the file's "alpine" block)
LEGACY_NAMES = {
    "api_url": ("ALPINE_API_URL", "api_url"),
    "api_key": ("ARGO_API_KEY", "api_key"),
    "sync_enabled": ("ALPINE_SYNC_ENABLED", "sync_enabled"),
}


@dataclass(frozen=True)
class AlpineConfig:
    api_url: str
    api_key: str
    sync_enabled: bool
    timeout: float
    sources: dict = field(default_factory=dict)
    config_file: str = ""

    @property
    def configured(self):
        return bool(self.api_url)

    @property
    def active(self):
        """True when passes should deliver: configured and not switched off."""
        return self.configured and self.sync_enabled

    @property
    def off_reason(self):
        if not self.configured:
            return "sync off: ALPINE_API_URL is not set"
        if not self.sync_enabled:
            return "sync off: ALPINE_SYNC_ENABLED is false"
        return ""

    def signal_url(self):
        return f"{self.api_url}/api/v1/external-signals/sync/signal"

    def health_url(self):
        return f"{self.api_url}/api/v1/external-signals/sync/health"

    def describe(self):
        """Return (name, shown value, source) rows, the key masked."""
        return [
            ("ALPINE_API_URL", mask_url(self.api_url) or "(not set)", self.sources["api_url"]),
            ("ARGO_API_KEY", mask_secret(self.api_key), self.sources["api_key"]),
            ("ALPINE_SYNC_ENABLED", str(self.sync_enabled).lower(), self.sources["sync_enabled"]),
            ("ALPINE_TIMEOUT", f"{self.timeout:g} s", self.sources["timeout"]),
        ]

    def __repr__(self):
        # Never let a debugger, a log line or a traceback print the key (or a password in the URL).
        return (f"AlpineConfig(api_url={mask_url(self.api_url)!r}, api_key={mask_secret(self.api_key)!r}, "
                f"sync_enabled={self.sync_enabled!r}, timeout={self.timeout!r})")


def _read_file_block(path):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImproperlyConfigured(f"SIGNALHUB_CONFIG_FILE={path!r}: no such file.") from None
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"SIGNALHUB_CONFIG_FILE={path!r} cannot be read as JSON: {exc}") from None
    block = data.get("alpine", {}) if isinstance(data, dict) else None
    if not isinstance(block, dict):
        raise ImproperlyConfigured(f"SIGNALHUB_CONFIG_FILE={path!r}: \"alpine\" must be an object.")
    return block


def _file_bool(path, value):
    try:
        return parse_bool(value)
    except ValueError:
        raise ImproperlyConfigured(f"SIGNALHUB_CONFIG_FILE={path!r}: alpine.sync_enabled={value!r} is not a boolean.") from None


def alpine_config():
    """Return the Alpine configuration now in force, with each value's source."""
    config_file = os.environ.get("SIGNALHUB_CONFIG_FILE", "").strip()
    block = _read_file_block(config_file) if config_file else {}
    values, sources = {}, {}
    defaults = {"api_url": "", "api_key": "", "sync_enabled": True}
    for name, (variable, file_key) in LEGACY_NAMES.items():
        raw = os.environ.get(variable)
        if raw is not None and raw.strip() != "":
            values[name] = env_bool(variable) if name == "sync_enabled" else raw.strip()
            sources[name] = ENVIRONMENT
        elif block.get(file_key) not in (None, ""):
            value = block[file_key]
            if name == "sync_enabled":
                value = _file_bool(config_file, value)
            elif not isinstance(value, str):
                raise ImproperlyConfigured(f"SIGNALHUB_CONFIG_FILE={config_file!r}: alpine.{file_key} must be text.")
            values[name] = value.strip() if isinstance(value, str) else value
            sources[name] = CONFIG_FILE
        else:
            values[name] = defaults[name]
            sources[name] = DEFAULT
    values["api_url"] = values["api_url"].rstrip("/")
    if values["api_url"] and not values["api_url"].startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"ALPINE_API_URL={mask_url(values['api_url'])!r} must start with http:// or https://.")
    sources["timeout"] = ENVIRONMENT if os.environ.get("ALPINE_TIMEOUT", "").strip() else DEFAULT
    return AlpineConfig(timeout=settings.ALPINE_TIMEOUT, sources=sources, config_file=config_file, **values)
