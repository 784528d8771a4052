"""Secrets that sit in URLs are masked wherever a URL is shown: commands, checks, the debug page."""

import json
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import RequestFactory
from django.utils import timezone
from django.utils.module_loading import import_string

from signalhub.secrets import HIDDEN, SecretsReporterFilter, mask_secret, mask_text, mask_url

DB_PASSWORD = "db-pw-s3cret"
REDIS_PASSWORD = "redis-pw-s3cret"
ALPINE_PASSWORD = "alpine-pw-s3cret"
ARCHIVE_PASSWORD = "archive-pw-s3cret"
SECRETS = (DB_PASSWORD, REDIS_PASSWORD, ALPINE_PASSWORD, ARCHIVE_PASSWORD)


@pytest.mark.parametrize("url, shown", [
    ("postgres://signalhub:pw@db.internal:5432/signalhub", f"postgres://signalhub:{HIDDEN}@db.internal:5432/signalhub"),
    ("redis://:pw@127.0.0.1:6379/0", f"redis://:{HIDDEN}@127.0.0.1:6379/0"),
    ("redis://127.0.0.1:6379/0?password=pw&db=1", f"redis://127.0.0.1:6379/0?password={HIDDEN}&db=1"),
    ("postgres://u@h/db?sslmode=require&sslpassword=pw&application_name=x",
     f"postgres://u@h/db?sslmode=require&sslpassword={HIDDEN}&application_name=x"),
    ("https://alpine/x?api_key=pw&token=pw&passwd=pw&pwd=pw&secret=pw",
     f"https://alpine/x?api_key={HIDDEN}&token={HIDDEN}&passwd={HIDDEN}&pwd={HIDDEN}&secret={HIDDEN}"),
    ("http://user:p@ss:w@rd@alpine:8000/path", f"http://user:{HIDDEN}@alpine:8000/path"),  # "@" in the password
    ("http://user:pw@alpine:notaport/", f"http://user:{HIDDEN}@alpine:notaport/"),  # does not parse, masked anyway
    ("postgres://postgres@127.0.0.1:5432/signalhub", "postgres://postgres@127.0.0.1:5432/signalhub"),
    ("sqlite:////var/signalhub/signalhub.sqlite3", "sqlite:////var/signalhub/signalhub.sqlite3"),
    ("", ""),
])
def test_mask_url_hides_user_info_passwords_and_secret_parameters(url, shown):
    assert mask_url(url) == shown


def test_mask_text_masks_urls_and_conninfo_passwords_inside_text():
    text = ("cannot reach http://u:pw1@alpine:8000/api: refused; libpq said host=db password=pw2 "
            "port=5432, 'redis://h/0?password=pw3'")
    masked = mask_text(text)
    assert "pw1" not in masked and "pw2" not in masked and "pw3" not in masked
    assert "http://u:********@alpine:8000/api" in masked and "host=db" in masked and "port=5432" in masked


def test_mask_secret_keeps_only_a_hint():
    assert mask_secret("file-key-abcdefghijklmnop") == "fi****op (25 characters)"
    assert mask_secret("short") == "**** (5 characters)" and mask_secret("") == "(not set)"


@pytest.fixture
def secret_urls(settings, monkeypatch):
    settings.DATABASE_URL = f"postgres://signalhub:{DB_PASSWORD}@db.internal:5432/signalhub"
    settings.SIGNALHUB_ARCHIVE_DATABASE_URL = f"postgres://archive:{ARCHIVE_PASSWORD}@db.internal/archive"
    settings.SIGNALHUB_REDIS_URL = f"redis://127.0.0.1:6379/0?password={REDIS_PASSWORD}"
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": settings.SIGNALHUB_REDIS_URL}
    monkeypatch.setenv("ALPINE_API_URL", f"http://alpine:{ALPINE_PASSWORD}@127.0.0.1:9")
    monkeypatch.setenv("ARGO_API_KEY", "alpine-key-0123456789abcdef")
    monkeypatch.delenv("SIGNALHUB_CONFIG_FILE", raising=False)
    return settings


@pytest.mark.parametrize("args", [(), ("--json",)])
def test_check_signal_config_masks_the_redis_and_alpine_passwords(secret_urls, args):
    out = StringIO()
    call_command("check_signal_config", *args, stdout=out)
    text = out.getvalue()
    for secret in SECRETS + ("alpine-key-0123456789abcdef",):
        assert secret not in text
    assert f"redis://127.0.0.1:6379/0?password={HIDDEN}" in text
    assert f"http://alpine:{HIDDEN}@127.0.0.1:9" in text


def test_a_refused_alpine_url_is_quoted_masked_in_the_setup_help(secret_urls, monkeypatch):
    # sync.E002 quotes the URL it refuses (here for the white space in it).
    monkeypatch.setenv("ALPINE_API_URL", f"http://alpine:{ALPINE_PASSWORD}@127.0.0.1:9/ x")
    out = StringIO()
    with pytest.raises(Exception):
        call_command("check_signal_config", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert [p["id"] for p in report["problems"]] == ["sync.E002"]
    assert ALPINE_PASSWORD not in out.getvalue() and HIDDEN in report["problems"][0]["message"]


@pytest.mark.django_db
def test_test_alpine_sync_and_verify_signals_mask_a_password_in_alpine_url(monkeypatch, alpine_stub):
    from sync.health import sync_checks

    monkeypatch.setenv("ALPINE_API_URL", alpine_stub.url.replace("http://", f"http://alpine:{ALPINE_PASSWORD}@"))
    out = StringIO()
    call_command("test_alpine_sync", stdout=out)
    [check] = sync_checks(timezone.now())
    assert "all checks passed" in out.getvalue() and check.status == "PASS"
    for text in (out.getvalue(), check.reason):
        assert ALPINE_PASSWORD not in text and HIDDEN in text


def _report(request):
    try:
        url = f"postgres://signalhub:{DB_PASSWORD}@db.internal/signalhub"  # a local the page shows
        raise RuntimeError(f"cannot connect to {url}")
    except RuntimeError:
        # As django.views.debug.technical_500_response builds it.
        return import_string(settings.DEFAULT_EXCEPTION_REPORTER)(request, *sys.exc_info())


def test_the_debug_page_masks_url_passwords_in_settings_environment_and_locals(secret_urls):
    assert secret_urls.DEFAULT_EXCEPTION_REPORTER_FILTER == "signalhub.secrets.SecretsReporterFilter"
    assert secret_urls.DEFAULT_EXCEPTION_REPORTER == "signalhub.secrets.SecretsExceptionReporter"
    request = RequestFactory().get("/admin/", **{
        # Under runserver and most WSGI servers request.META carries the process environment.
        "DATABASE_URL": secret_urls.DATABASE_URL, "SIGNALHUB_REDIS_URL": secret_urls.SIGNALHUB_REDIS_URL,
        "SIGNALHUB_ARCHIVE_DATABASE_URL": secret_urls.SIGNALHUB_ARCHIVE_DATABASE_URL,
        "ALPINE_API_URL": f"http://alpine:{ALPINE_PASSWORD}@127.0.0.1:9"})
    reporter = _report(request)
    assert isinstance(reporter.filter, SecretsReporterFilter)
    for page in (reporter.get_traceback_text(), reporter.get_traceback_html()):
        for secret in SECRETS:
            assert secret not in page
        assert "db.internal" in page and "SIGNALHUB_REDIS_URL" in page  # shown, masked
