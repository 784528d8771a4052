"""SignalHub settings: one module, configured through the environment.

Every variable read here is listed, with its default, in README.md
("Configuration"). Readers in signalhub.env raise ImproperlyConfigured on a bad
value so that a deployment fails at start-up, naming the variable.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from signalhub.env import env_bool, env_choice, env_float, env_int, env_list, env_str
from signalhub.private_files import PRIVATE_FILE_MODE, make_private_dir

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)

# The SQLite database, the journals and the archive file live here.
DATA_DIR = Path(env_str("SIGNALHUB_DATA_DIR") or BASE_DIR / "var").resolve()


def _secret_key():
    """Return the key from the environment, or the development key kept in the data directory."""
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    key_file = DATA_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off "
            f"(for a development machine, `make secret-key` writes one to {key_file})."
        )
    make_private_dir(DATA_DIR)
    key = secrets.token_urlsafe(50)
    # Created 0600 in one step: never readable by another user, not even for a moment.
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    except FileExistsError:  # another process wrote it first: use that one
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "signalhub",
    "signals",
    "sync",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "signalhub.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "signalhub.wsgi.application"
ASGI_APPLICATION = "signalhub.asgi.application"


# Databases ---------------------------------------------------------------

SQLITE_BUSY_TIMEOUT = env_float("SIGNALHUB_SQLITE_BUSY_TIMEOUT", 20.0, minimum=0)


# Query options of a SQLite URL, which SignalHub does not pass on (system check signalhub.W002).
IGNORED_DATABASE_OPTIONS = {}


def database_from_url(url, *, test_name=None, alias="default"):
    """Return a DATABASES entry for ``url`` with SignalHub's per-engine options.

    A PostgreSQL URL's query options (sslmode, sslrootcert, application_name,
    connect_timeout, options, ...) go to the driver beside the pool's.
    """
    config = dj_database_url.parse(url)
    engine = config["ENGINE"]
    # dj-database-url puts the URL's query options in OPTIONS.
    url_options = dict(config.get("OPTIONS") or {})
    if engine == "django.db.backends.sqlite3":
        # SQLite's own driver options are SignalHub's to set (the timeout,
        # WAL); an option in the URL is reported, not passed to sqlite3.connect,
        # which would refuse an unknown one at the first query.
        IGNORED_DATABASE_OPTIONS.pop(alias, None)
        if url_options:
            IGNORED_DATABASE_OPTIONS[alias] = sorted(url_options)
        # The same backend, with the database file created 0600 (signalhub.backends.sqlite3).
        config["ENGINE"] = "signalhub.backends.sqlite3"
        # WAL lets readers (admin, monitor) run beside the writer; IMMEDIATE makes
        # a writer take the lock at BEGIN and wait up to the busy timeout instead
        # of failing half-way with "database is locked".
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": SQLITE_BUSY_TIMEOUT,
        }
        if test_name:
            # A file, not :memory:, so that subprocesses in the tests (crash
            # tests, qcluster) see the same test database.
            config["TEST"] = {"NAME": str(DATA_DIR / test_name)}
    elif engine in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
        config["ENGINE"] = "django.db.backends.postgresql"
        # The psycopg pool needs CONN_MAX_AGE = 0 (the pool keeps connections).
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {**url_options,
                             "pool": {"min_size": 1, "max_size": env_int("SIGNALHUB_DB_POOL_SIZE", 10, minimum=1)}}
    return config


DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'signalhub.sqlite3'}"
DATABASES = {"default": database_from_url(DATABASE_URL, test_name="test_signalhub.sqlite3")}


# The archive database (operations) ----------------------------------------------

# Old signals move here (`manage.py archive_signals`); it holds the same ledger
# tables as the main database (`manage.py migrate --database archive`) and
# nothing else. A SQLite file in the data directory unless configured.
SIGNALHUB_ARCHIVE_DATABASE_URL = (
    env_str("SIGNALHUB_ARCHIVE_DATABASE_URL") or f"sqlite:///{DATA_DIR / 'signalhub_archive.sqlite3'}")
try:
    DATABASES["archive"] = database_from_url(SIGNALHUB_ARCHIVE_DATABASE_URL, test_name="test_signalhub_archive.sqlite3",
                                             alias="archive")
except ValueError as exc:  # dj-database-url's errors (unknown scheme, bad port) are ValueErrors
    raise ImproperlyConfigured(f"SIGNALHUB_ARCHIVE_DATABASE_URL is not a database URL: {exc}") from None
if DATABASES["archive"]["ENGINE"] == "django.db.backends.postgresql" and (
        DATABASES["archive"]["NAME"] == DATABASES["default"].get("NAME")):
    # Never the same test database as the main alias (the archive itself
    # being the main database is refused by the system check signalhub.E004).
    DATABASES["archive"]["TEST"] = {"NAME": f"test_{DATABASES['archive']['NAME']}_archive"}
DATABASE_ROUTERS = ["signalhub.routers.ArchiveRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Shared across processes (web, qcluster, commands) so django-q2's cluster
# status is visible to every process; created by `migrate` via createcachetable.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "signalhub_cache",
    }
}


# The debug page (and error mails) hide URL passwords and secret query
# parameters too: DATABASE_URL, SIGNALHUB_REDIS_URL, ALPINE_API_URL, ...
DEFAULT_EXCEPTION_REPORTER_FILTER = "signalhub.secrets.SecretsReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "signalhub.secrets.SecretsExceptionReporter"


# Auth, i18n, static ----------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}


# Security (on when debug is off; adjustable behind a TLS-terminating proxy) --

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
    if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


# Logging: one line per record on stdout, with logger name and level ---------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "line"}},
    "root": {"handlers": ["stdout"], "level": env_choice(
        "SIGNALHUB_LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")).upper()},
}


# The signal ledger ------------------------------------------------------------

# Signals still open this many days after their timestamp are marked expired.
SIGNALHUB_EXPIRE_AFTER_DAYS = env_int("SIGNALHUB_EXPIRE_AFTER_DAYS", 30, minimum=1)


# The write path: journal, batching, flushing (README "Write path") -------------

# Append-only journal segments, one active per process; must be a local disk
# (the owner's flock is how recovery proves a segment's owner is dead).
SIGNALHUB_JOURNAL_DIR = Path(env_str("SIGNALHUB_JOURNAL_DIR") or DATA_DIR / "journal").resolve()
# always: fdatasync before log_signal returns; batch: the flusher syncs each
# segment when it is sealed; never: the operating system decides.
SIGNALHUB_JOURNAL_FSYNC = env_choice("SIGNALHUB_JOURNAL_FSYNC", "batch", ("always", "batch", "never"))
# 4 MiB (about 13,000 signals): a backlog spans several segments, which
# PostgreSQL writes side by side (SIGNALHUB_FLUSH_WRITERS).
SIGNALHUB_JOURNAL_SEGMENT_BYTES = env_int("SIGNALHUB_JOURNAL_SEGMENT_BYTES", 4 * 1024 * 1024, minimum=4096)
SIGNALHUB_JOURNAL_SEGMENT_SECONDS = env_float("SIGNALHUB_JOURNAL_SEGMENT_SECONDS", 300.0, minimum=1)
# A write is due when this many signals are pending, or the oldest is this old.
SIGNALHUB_BATCH_SIZE = env_int("SIGNALHUB_BATCH_SIZE", 50, minimum=1)
SIGNALHUB_BATCH_TIMEOUT = env_float("SIGNALHUB_BATCH_TIMEOUT", 5.0, minimum=0)
# Under load one transaction takes up to this many signals, so the writer keeps up:
# each batch costs the flusher a few waits for the interpreter lock, and a large
# one must still hold SQLite's write lock well inside the busy timeout
# (docs/benchmarks.md has the figures behind the default).
SIGNALHUB_BATCH_MAX = env_int("SIGNALHUB_BATCH_MAX", 20_000, minimum=1)
# On PostgreSQL a backlog of several segments is written by this many
# connections at once, one segment each (SQLite: always one).
SIGNALHUB_FLUSH_WRITERS = env_int("SIGNALHUB_FLUSH_WRITERS", 2, minimum=1)
# The periodic flush (django-q2) repeats this often within each minute.
SIGNALHUB_FLUSH_INTERVAL = env_float("SIGNALHUB_FLUSH_INTERVAL", 10.0, minimum=1)
# Database down or locked: retry after 0.5 s, doubling up to this many seconds.
SIGNALHUB_FLUSH_RETRY_MAX = env_float("SIGNALHUB_FLUSH_RETRY_MAX", 30.0, minimum=0.1)
# At exit (atexit, SIGTERM, SIGINT) wait this long for pending signals to be
# written; what is left stays in the journal for the periodic flush.
SIGNALHUB_EXIT_FLUSH_TIMEOUT = env_float("SIGNALHUB_EXIT_FLUSH_TIMEOUT", 10.0, minimum=0)
# fast: journal lines unpacked by the database, records by SQLite multi-row INSERT /
# PostgreSQL COPY; orm: bulk_create (same results, slower).
SIGNALHUB_WRITE_METHOD = env_choice("SIGNALHUB_WRITE_METHOD", "fast", ("fast", "orm"))


# django-q2: ORM broker on the main database unless Redis is configured --------

SIGNALHUB_REDIS_URL = env_str("SIGNALHUB_REDIS_URL")
Q_CLUSTER = {
    # Clusters (and their queues) with different names never share tasks.
    "name": env_str("SIGNALHUB_Q_CLUSTER_NAME") or "signalhub",
    # The flush and delivery tasks each hold a worker for most of every minute
    # (they repeat inside it), so two more are left for everything else.
    "workers": env_int("SIGNALHUB_Q_WORKERS", 4, minimum=1),
    # A task may run this long; the broker hands it out again after `retry`
    # seconds, so the timeout must stay below the retry (checked by a system check).
    "timeout": env_int("SIGNALHUB_Q_TIMEOUT", 300, minimum=1),
    "retry": env_int("SIGNALHUB_Q_RETRY", 360, minimum=2),
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 500,
    "label": "Tasks",
}
if SIGNALHUB_REDIS_URL:
    Q_CLUSTER["redis"] = SIGNALHUB_REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"


# Delivery to Alpine (the sync app) ---------------------------------------------
# ALPINE_API_URL, ARGO_API_KEY and ALPINE_SYNC_ENABLED (or the `alpine` block of
# the JSON file named by SIGNALHUB_CONFIG_FILE) are read at call time by
# sync.config.alpine_config(), not here, so a changed key is picked up without
# a restart and tests can set them per test.

# Connect and read timeout of one request to Alpine, in seconds.
ALPINE_TIMEOUT = env_float("ALPINE_TIMEOUT", 10.0, minimum=0.05)
# Seconds between delivery passes inside the once-a-minute django-q2 schedule.
SIGNALHUB_SYNC_INTERVAL = env_float("SIGNALHUB_SYNC_INTERVAL", 10.0, minimum=0.1)
# How long a claimed batch belongs to its worker; a killed worker's rows are
# picked up by another once it has passed.
SIGNALHUB_SYNC_LEASE_SECONDS = env_float("SIGNALHUB_SYNC_LEASE_SECONDS", 300.0, minimum=1)
# Requests in flight at once (threads, each with its own keep-alive session).
SIGNALHUB_SYNC_CONCURRENCY = env_int("SIGNALHUB_SYNC_CONCURRENCY", 8, minimum=1)
# Deliveries claimed per pass.
SIGNALHUB_SYNC_BATCH_SIZE = env_int("SIGNALHUB_SYNC_BATCH_SIZE", 100, minimum=1)
# Full-jitter exponential backoff: a random delay up to min(cap, base * 2**(attempts-1)).
SIGNALHUB_SYNC_BACKOFF_BASE = env_float("SIGNALHUB_SYNC_BACKOFF_BASE", 5.0, minimum=0)
SIGNALHUB_SYNC_BACKOFF_CAP = env_float("SIGNALHUB_SYNC_BACKOFF_CAP", 3600.0, minimum=0)
# A delivery is dead after this many attempts, or this long after its first attempt.
SIGNALHUB_SYNC_MAX_ATTEMPTS = env_int("SIGNALHUB_SYNC_MAX_ATTEMPTS", 10, minimum=1)
SIGNALHUB_SYNC_MAX_AGE = env_float("SIGNALHUB_SYNC_MAX_AGE", 3 * 86400.0, minimum=1)
# Circuit breaker: this many failed attempts in a row pause the destination
# for SIGNALHUB_SYNC_PAUSE_SECONDS instead of hammering it.
SIGNALHUB_SYNC_PAUSE_AFTER_FAILURES = env_int("SIGNALHUB_SYNC_PAUSE_AFTER_FAILURES", 25, minimum=1)
SIGNALHUB_SYNC_PAUSE_SECONDS = env_float("SIGNALHUB_SYNC_PAUSE_SECONDS", 60.0, minimum=0)
# A 401/403/404 (key or URL wrong) pauses delivery this long before one more try
# (a changed key lifts the pause at once).
SIGNALHUB_SYNC_AUTH_PAUSE_SECONDS = env_float("SIGNALHUB_SYNC_AUTH_PAUSE_SECONDS", 300.0, minimum=0)
# A delivery whose pass failed inside SignalHub (a bug, not Alpine) is parked this long.
SIGNALHUB_SYNC_PARK_SECONDS = env_float("SIGNALHUB_SYNC_PARK_SECONDS", 3600.0, minimum=0)
# Attempt log rows older than this many days are pruned daily.
SIGNALHUB_SYNC_ATTEMPT_RETENTION_DAYS = env_int("SIGNALHUB_SYNC_ATTEMPT_RETENTION_DAYS", 30, minimum=1)
# Most deliveries one "retry dead since" request queues again.
SIGNALHUB_SYNC_REQUEUE_LIMIT = env_int("SIGNALHUB_SYNC_REQUEUE_LIMIT", 10_000, minimum=1)
# Push: queue a delivery task right after each committed batch of signals (needs the cluster).
SIGNALHUB_SYNC_PUSH = env_bool("SIGNALHUB_SYNC_PUSH", False)


# Operations: archiving, monitoring thresholds --------------------------------

# The monthly archiving schedule (signals older than the given calendar months).
SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED = env_bool("SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED", True)
SIGNALHUB_ARCHIVE_MONTHS = env_int("SIGNALHUB_ARCHIVE_MONTHS", 12, minimum=1)
# Legacy monitor defaults; which problem is a warning and which critical is in
# signals/operations/monitoring.py and README ("Operations").
SIGNALHUB_MONITOR_DB_MAX_MB = env_float("SIGNALHUB_MONITOR_DB_MAX_MB", 1000, minimum=0)
SIGNALHUB_MONITOR_WAL_MAX_MB = env_float("SIGNALHUB_MONITOR_WAL_MAX_MB", 100, minimum=0)
SIGNALHUB_MONITOR_MIN_SIGNALS_LAST_HOUR = env_int("SIGNALHUB_MONITOR_MIN_SIGNALS_LAST_HOUR", 10, minimum=0)
SIGNALHUB_MONITOR_MAX_MAIN_SIGNALS = env_int("SIGNALHUB_MONITOR_MAX_MAIN_SIGNALS", 100_000, minimum=1)
# A journal line not stored after this many seconds means the writer is stuck (critical).
SIGNALHUB_MONITOR_JOURNAL_MAX_AGE = env_float("SIGNALHUB_MONITOR_JOURNAL_MAX_AGE", 60.0, minimum=0)
# A delivery still on its way after this many seconds (warning, while sync is on).
SIGNALHUB_MONITOR_UNDELIVERED_MAX_AGE = env_float("SIGNALHUB_MONITOR_UNDELIVERED_MAX_AGE", 3600.0, minimum=0)
