"""The effective configuration, each value with where it came from, for ``check_signal_config``."""

import os
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core import checks


@dataclass
class Entry:
    name: str  # the environment variable
    value: str  # effective value, secrets masked
    source: str  # "environment" or "default" (the sync app adds "config file" for Alpine)
    meaning: str
    help: str = ""  # what to do, when the value needs attention

    def as_dict(self):
        return asdict(self)


def mask(value):
    """Return ``value`` with all but a hint of it hidden (never the whole secret)."""
    value = str(value or "")
    if not value:
        return "(not set)"
    return f"{value[:2]}{'*' * 8} ({len(value)} characters)" if len(value) > 8 else "*" * 8


def mask_url(url):
    """Return ``url`` with its password masked."""
    parts = urlsplit(str(url))
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":********@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return str(url)


def _source(name):
    return "environment" if os.environ.get(name, "").strip() else "default"


def _entry(name, value, meaning, help=""):
    return Entry(name, str(value), _source(name), meaning, help)


def core_entries():
    q = settings.Q_CLUSTER
    entries = [
        _entry("DJANGO_DEBUG", settings.DEBUG, "debug pages; keep off in production"),
        Entry("DJANGO_SECRET_KEY", mask(settings.SECRET_KEY),
              "environment" if _source("DJANGO_SECRET_KEY") == "environment" else "default (data directory file)",
              "signs sessions and django-q2 packages",
              "" if _source("DJANGO_SECRET_KEY") == "environment" else
              "development key from the data directory; set DJANGO_SECRET_KEY on a production machine"),
        _entry("DJANGO_ALLOWED_HOSTS", ",".join(settings.ALLOWED_HOSTS) or "(none)", "host names the web server answers",
               "" if settings.ALLOWED_HOSTS else "set DJANGO_ALLOWED_HOSTS to the host name(s) of the admin"),
        _entry("SIGNALHUB_DATA_DIR", settings.DATA_DIR, "SQLite database, archive file, locks, secret key"),
        _entry("DATABASE_URL", mask_url(settings.DATABASE_URL), "the main database"),
        _entry("SIGNALHUB_ARCHIVE_DATABASE_URL", mask_url(settings.SIGNALHUB_ARCHIVE_DATABASE_URL),
               "where archive_signals moves old signals"),
        _entry("SIGNALHUB_SQLITE_BUSY_TIMEOUT", settings.SQLITE_BUSY_TIMEOUT, "seconds a SQLite writer waits for the lock"),
        _entry("SIGNALHUB_REDIS_URL", mask_url(settings.SIGNALHUB_REDIS_URL) or "(not set: ORM broker on the main database)",
               "django-q2 broker"),
        _entry("SIGNALHUB_Q_CLUSTER_NAME", q["name"], "django-q2 cluster and queue name"),
        _entry("SIGNALHUB_Q_WORKERS", q["workers"], "django-q2 worker processes"),
        _entry("SIGNALHUB_Q_TIMEOUT", q["timeout"], "seconds a task may run"),
        _entry("SIGNALHUB_Q_RETRY", q["retry"], "seconds before an unacknowledged task is handed out again"),
        _entry("SIGNALHUB_EXPIRE_AFTER_DAYS", settings.SIGNALHUB_EXPIRE_AFTER_DAYS, "open signals expire after this many days"),
        _entry("SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED", settings.SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED, "monthly archiving on/off"),
        _entry("SIGNALHUB_ARCHIVE_MONTHS", settings.SIGNALHUB_ARCHIVE_MONTHS, "monthly archiving moves signals older than this"),
        _entry("SIGNALHUB_MONITOR_DB_MAX_MB", settings.SIGNALHUB_MONITOR_DB_MAX_MB, "monitor warns above this database size"),
        _entry("SIGNALHUB_MONITOR_WAL_MAX_MB", settings.SIGNALHUB_MONITOR_WAL_MAX_MB, "monitor warns above this WAL size"),
        _entry("SIGNALHUB_MONITOR_MIN_SIGNALS_LAST_HOUR", settings.SIGNALHUB_MONITOR_MIN_SIGNALS_LAST_HOUR,
               "monitor warns below this many signals in the last hour"),
        _entry("SIGNALHUB_MONITOR_MAX_MAIN_SIGNALS", settings.SIGNALHUB_MONITOR_MAX_MAIN_SIGNALS,
               "monitor warns above this many signals in the main database"),
    ]
    return entries


def alpine_entries():
    """SYNC (branch sync) goes here: ALPINE_API_URL, the Alpine key (masked with sync.config.mask_secret),
    ALPINE_SYNC_ENABLED, with their sources (environment / config file / default) from
    sync.config.alpine_config().sources, and setup help when the URL or key is missing. No entries until then."""
    return []


def configuration_report():
    """Return ``(entries, problems)``: every setting with its source, and the system checks that fail."""
    entries = core_entries() + alpine_entries()
    problems = [message for message in checks.run_checks(include_deployment_checks=False)
                if message.id and message.id.startswith("signalhub.")]
    return entries, problems
