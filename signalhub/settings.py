"""SignalHub settings: one module, configured through the environment.

Every variable read here is listed, with its default, in README.md
("Configuration"). Readers in signalhub.env raise ImproperlyConfigured on a bad
value so that a deployment fails at start-up, naming the variable.
"""

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from signalhub.env import env_bool, env_choice, env_float, env_int, env_list, env_str

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
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
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


def database_from_url(url, *, test_name=None):
    """Return a DATABASES entry for ``url`` with SignalHub's per-engine options."""
    config = dj_database_url.parse(url)
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
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
        config["OPTIONS"] = {"pool": {"min_size": 1, "max_size": env_int("SIGNALHUB_DB_POOL_SIZE", 10, minimum=1)}}
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
    DATABASES["archive"] = database_from_url(SIGNALHUB_ARCHIVE_DATABASE_URL, test_name="test_signalhub_archive.sqlite3")
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


# django-q2: ORM broker on the main database unless Redis is configured --------

SIGNALHUB_REDIS_URL = env_str("SIGNALHUB_REDIS_URL")
Q_CLUSTER = {
    # Clusters (and their queues) with different names never share tasks.
    "name": env_str("SIGNALHUB_Q_CLUSTER_NAME") or "signalhub",
    "workers": env_int("SIGNALHUB_Q_WORKERS", 2, minimum=1),
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


# Operations: archiving, monitoring thresholds --------------------------------

# The monthly archiving schedule (signals older than the given calendar months).
SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED = env_bool("SIGNALHUB_ARCHIVE_SCHEDULE_ENABLED", True)
SIGNALHUB_ARCHIVE_MONTHS = env_int("SIGNALHUB_ARCHIVE_MONTHS", 12, minimum=1)
# Legacy monitor defaults; which problem is a warning and which critical is in
# signals/monitoring.py and README ("Operations").
SIGNALHUB_MONITOR_DB_MAX_MB = env_float("SIGNALHUB_MONITOR_DB_MAX_MB", 1000, minimum=0)
SIGNALHUB_MONITOR_WAL_MAX_MB = env_float("SIGNALHUB_MONITOR_WAL_MAX_MB", 100, minimum=0)
SIGNALHUB_MONITOR_MIN_SIGNALS_LAST_HOUR = env_int("SIGNALHUB_MONITOR_MIN_SIGNALS_LAST_HOUR", 10, minimum=0)
SIGNALHUB_MONITOR_MAX_MAIN_SIGNALS = env_int("SIGNALHUB_MONITOR_MAX_MAIN_SIGNALS", 100_000, minimum=1)
