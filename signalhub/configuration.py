"""The effective configuration, each value with where it came from, for ``check_signal_config``."""

import os
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core import checks

from signalhub.secrets import mask_secret, mask_text, mask_url


@dataclass
class Entry:
    name: str  # the environment variable
    value: str  # effective value, secrets masked
    source: str  # "environment", "config file" (Alpine's settings) or "default"
    meaning: str
    help: str = ""  # what to do, when the value needs attention

    def as_dict(self):
        return asdict(self)


def _source(name):
    return "environment" if os.environ.get(name, "").strip() else "default"


def _entry(name, value, meaning, help=""):
    return Entry(name, str(value), _source(name), meaning, help)


def core_entries():
    q = settings.Q_CLUSTER
    entries = [
        _entry("DJANGO_DEBUG", settings.DEBUG, "debug pages; keep off in production"),
        Entry("DJANGO_SECRET_KEY", mask_secret(settings.SECRET_KEY),
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
    """Return Alpine's settings with their real sources (sync.config), the key masked, and setup help."""
    from django.core.exceptions import ImproperlyConfigured

    from sync.config import alpine_config

    config_file = os.environ.get("SIGNALHUB_CONFIG_FILE", "").strip()
    entries = [_entry("SIGNALHUB_CONFIG_FILE", config_file or "(not set)",
                      "JSON file whose \"alpine\" block is read when the environment does not set a value")]
    try:
        config = alpine_config()
    except ImproperlyConfigured as exc:
        return entries + [Entry("ALPINE_API_URL", "(unreadable)", "-", "Alpine's base URL",
                                f"the Alpine configuration cannot be read: {mask_text(exc)}")]
    url_help = key_help = ""
    if not config.configured:
        url_help = ("set ALPINE_API_URL (or alpine.api_url in SIGNALHUB_CONFIG_FILE) to deliver signals to Alpine; "
                    "until then they are stored and wait as pending")
    elif not config.api_key:
        key_help = ("set ARGO_API_KEY (or alpine.api_key in SIGNALHUB_CONFIG_FILE): only an Alpine without a key "
                    "accepts deliveries without one; check it with manage.py test_alpine_sync")
    return entries + [
        Entry("ALPINE_API_URL", mask_url(config.api_url) or "(not set)", config.sources["api_url"], "Alpine's base URL", url_help),
        Entry("ARGO_API_KEY", mask_secret(config.api_key), config.sources["api_key"],
              "key sent to Alpine as X-API-Key", key_help),
        Entry("ALPINE_SYNC_ENABLED", str(config.sync_enabled).lower(), config.sources["sync_enabled"],
              "deliver to Alpine (false: signals wait as pending)",
              "" if config.sync_enabled or not config.configured else
              "delivery is switched off: set ALPINE_SYNC_ENABLED=true when Alpine should receive signals"),
        Entry("ALPINE_TIMEOUT", f"{config.timeout:g}", config.sources["timeout"], "seconds to connect and to read Alpine's answer"),
    ]


def write_path_entries():
    return [
        _entry("SIGNALHUB_JOURNAL_DIR", settings.SIGNALHUB_JOURNAL_DIR, "journal segments (a local disk)"),
        _entry("SIGNALHUB_JOURNAL_FSYNC", settings.SIGNALHUB_JOURNAL_FSYNC, "when journal lines reach the disk"),
        _entry("SIGNALHUB_JOURNAL_SEGMENT_BYTES", settings.SIGNALHUB_JOURNAL_SEGMENT_BYTES, "a segment is sealed at this size"),
        _entry("SIGNALHUB_JOURNAL_SEGMENT_SECONDS", settings.SIGNALHUB_JOURNAL_SEGMENT_SECONDS, "... or at this age"),
        _entry("SIGNALHUB_BATCH_SIZE", settings.SIGNALHUB_BATCH_SIZE, "a write is due at this many pending signals"),
        _entry("SIGNALHUB_BATCH_TIMEOUT", settings.SIGNALHUB_BATCH_TIMEOUT, "... or when the oldest is this many seconds old"),
        _entry("SIGNALHUB_BATCH_MAX", settings.SIGNALHUB_BATCH_MAX, "most signals in one transaction"),
        _entry("SIGNALHUB_FLUSH_WRITERS", settings.SIGNALHUB_FLUSH_WRITERS,
               "PostgreSQL connections writing journal segments at once (SQLite: one)"),
        _entry("SIGNALHUB_FLUSH_INTERVAL", settings.SIGNALHUB_FLUSH_INTERVAL, "seconds between periodic flushes"),
        _entry("SIGNALHUB_FLUSH_RETRY_MAX", settings.SIGNALHUB_FLUSH_RETRY_MAX, "longest wait between write retries"),
        _entry("SIGNALHUB_EXIT_FLUSH_TIMEOUT", settings.SIGNALHUB_EXIT_FLUSH_TIMEOUT, "seconds to flush at exit"),
        _entry("SIGNALHUB_WRITE_METHOD", settings.SIGNALHUB_WRITE_METHOD, "fast (journal lines unpacked by the database; imports by multi-row INSERT on SQLite, COPY on PostgreSQL) or orm"),
        _entry("SIGNALHUB_MONITOR_JOURNAL_MAX_AGE", settings.SIGNALHUB_MONITOR_JOURNAL_MAX_AGE,
               "monitor is critical when a journal line waits longer (seconds)"),
    ]


SYNC_SETTINGS = {
    "SIGNALHUB_SYNC_INTERVAL": "seconds between delivery passes within each minute",
    "SIGNALHUB_SYNC_LEASE_SECONDS": "how long a claimed batch belongs to its worker",
    "SIGNALHUB_SYNC_CONCURRENCY": "requests to Alpine in flight at once",
    "SIGNALHUB_SYNC_BATCH_SIZE": "deliveries claimed per pass",
    "SIGNALHUB_SYNC_BACKOFF_BASE": "first retry delay (seconds, doubled per attempt, jittered)",
    "SIGNALHUB_SYNC_BACKOFF_CAP": "longest retry delay (seconds)",
    "SIGNALHUB_SYNC_MAX_ATTEMPTS": "a delivery is dead after this many attempts",
    "SIGNALHUB_SYNC_MAX_AGE": "... or this many seconds after its first attempt",
    "SIGNALHUB_SYNC_PAUSE_AFTER_FAILURES": "failures in a row that pause delivery",
    "SIGNALHUB_SYNC_PAUSE_SECONDS": "how long that pause lasts",
    "SIGNALHUB_SYNC_AUTH_PAUSE_SECONDS": "pause after Alpine refuses the key or URL",
    "SIGNALHUB_SYNC_PARK_SECONDS": "a delivery whose pass failed inside SignalHub waits this long",
    "SIGNALHUB_SYNC_ATTEMPT_RETENTION_DAYS": "attempt log rows kept this many days",
    "SIGNALHUB_SYNC_REQUEUE_LIMIT": "most deliveries one \"retry dead since\" queues again",
    "SIGNALHUB_SYNC_PUSH": "queue a delivery task right after each stored batch",
}


def sync_entries():
    entries = [_entry(name, getattr(settings, name), meaning) for name, meaning in SYNC_SETTINGS.items()]
    entries.append(_entry("SIGNALHUB_MONITOR_UNDELIVERED_MAX_AGE", settings.SIGNALHUB_MONITOR_UNDELIVERED_MAX_AGE,
                          "monitor warns when a delivery waits longer (seconds, while sync is on)"))
    return entries


def configuration_report():
    """Return ``(entries, problems)``: every setting with its source, and the system checks that fail."""
    entries = core_entries() + alpine_entries() + write_path_entries() + sync_entries()
    # SignalHub's checks and the sync app's (Alpine); sync.I001 ("sync off") is information, not a problem.
    problems = [message for message in checks.run_checks(include_deployment_checks=False)
                if message.id and message.id.startswith(("signalhub.", "sync.")) and message.level >= checks.WARNING]
    return entries, problems
