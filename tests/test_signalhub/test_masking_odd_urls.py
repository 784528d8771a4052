"""Passwords holding "/", "?", "#" or "@" unescaped are masked whole, and no parser's complaint quotes a piece of one.

Such a URL does not parse: the authority seems to end inside the password.
The masker then hides everything up to the URL's last "@" after a ":"
(over-masking rather than leaking), and any piece of a configured URL's
password that a parser or driver quotes back ("Port could not be cast to
integer value as 'Hunt'") is hidden too. Checked through
``check_signal_config``, ``manage.py check`` and ``verify_signals``, the
commands an operator runs with a broken configuration.
"""

import json
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command

from signalhub.secrets import HIDDEN, mask_text, mask_url
from sync.checks import check_alpine_config
from tests.support import manage, process_env

# (URL, what mask_url shows, pieces of the password that must never be shown)
ODD_URLS = {
    "redis, / in password": ("redis://:Hunt/er2Secret@h:6379/0", f"redis://:{HIDDEN}@h:6379/0"),
    "redis, ? in password": ("redis://default:Hunt?er2Secret@h:6379/0", f"redis://default:{HIDDEN}@h:6379/0"),
    "http, # in password": ("http://alp:Hunt#er2Secret@h:9/", f"http://alp:{HIDDEN}@h:9/"),
    "postgres, @ and ? in password": ("postgres://u:p@ss?w0rd@h/db", f"postgres://u:{HIDDEN}@h/db"),
}
PIECES = ("Hunt", "er2Secret", "ss?w0rd", "@ss", "w0rd")
ALPINE_URLS = ["http://alp:Hunt#er2Secret@h:9/", "http://alp:Hunt/er2Secret@h:9", "http://alp:Hunt?er2Secret@h:9"]
REDIS_URLS = ["redis://:Hunt/er2Secret@h:6379/0", "redis://default:Hunt?er2Secret@h:6379/0"]


def assert_masked(text):
    for piece in PIECES:
        assert piece not in text, (piece, text)


@pytest.mark.parametrize("url, shown", ODD_URLS.values(), ids=ODD_URLS.keys())
def test_mask_url_hides_a_password_holding_url_delimiters(url, shown):
    assert mask_url(url) == shown
    assert mask_text(f"cannot connect to {url}: refused") == f"cannot connect to {shown}: refused"


@pytest.mark.parametrize("url, shown", [
    ("http://h:9/x?by=ops@desk", f"http://h:{HIDDEN}@desk"),  # ambiguous: hidden rather than guessed
    ("https://alpine.internal/api?by=ops@desk", "https://alpine.internal/api?by=ops@desk"),  # no ":" before the "@"
    ("redis://h/0?password=se@cret", f"redis://h/0?password={HIDDEN}"),
])
def test_an_at_sign_after_the_host_is_masked_only_when_a_colon_could_start_a_password(url, shown):
    assert mask_url(url) == shown


def test_a_piece_of_a_password_quoted_by_a_parser_is_hidden():
    url = "http://alp:Hunt#er2Secret@h:9"
    assert mask_text("Port could not be cast to integer value as 'Hunt'", url) == (
        f"Port could not be cast to integer value as '{HIDDEN}'")
    assert mask_text("Failed to parse: 'alp:Hunt' is not a valid host or port", url) == (
        f"Failed to parse: 'alp:{HIDDEN}' is not a valid host or port")
    # Pieces shorter than four characters, and words not in the password, stay.
    assert mask_text("the port is 'Hun' or 'value'", url) == "the port is 'Hun' or 'value'"


def test_pieces_of_the_configured_urls_are_hidden_in_any_text(settings, monkeypatch):
    settings.SIGNALHUB_REDIS_URL = REDIS_URLS[0]
    monkeypatch.setenv("ALPINE_API_URL", "http://alp:p@ss?w0rd@h:9")
    text = mask_text("broker said 'Hunt'; Alpine said 'p@ss?w0rd', then 'ss?w0rd'")
    assert text == f"broker said '{HIDDEN}'; Alpine said '{HIDDEN}', then 'ss?{HIDDEN}'"


@pytest.mark.parametrize("url", ALPINE_URLS)
def test_sync_e002_masks_the_url_and_the_parsers_complaint(url, monkeypatch):
    monkeypatch.setenv("ALPINE_API_URL", url)
    monkeypatch.delenv("SIGNALHUB_CONFIG_FILE", raising=False)
    [error] = [message for message in check_alpine_config() if message.id == "sync.E002"]
    assert_masked(error.msg)
    assert f"ALPINE_API_URL='http://alp:{HIDDEN}@h:9'" in error.msg


@pytest.mark.parametrize("url", ALPINE_URLS)
@pytest.mark.parametrize("args", [(), ("--json",)])
def test_check_signal_config_masks_an_odd_alpine_url(url, args, monkeypatch):
    monkeypatch.setenv("ALPINE_API_URL", url)
    monkeypatch.delenv("SIGNALHUB_CONFIG_FILE", raising=False)
    out = StringIO()
    with pytest.raises(Exception):  # sync.E002 is an error: the command fails
        call_command("check_signal_config", *args, stdout=out, stderr=out)
    assert_masked(out.getvalue())
    assert HIDDEN in out.getvalue()
    if args:
        assert "sync.E002" in [problem["id"] for problem in json.loads(out.getvalue())["problems"]]


@pytest.mark.parametrize("name, url", [*(("SIGNALHUB_REDIS_URL", url) for url in REDIS_URLS),
                                       ("DATABASE_URL", "postgres://u:p@ss?w0rd@h/db")])
def test_check_signal_config_masks_odd_database_and_redis_urls(name, url, settings):
    setattr(settings, name, url)
    out = StringIO()
    call_command("check_signal_config", stdout=out)
    assert_masked(out.getvalue())
    assert mask_url(url) in out.getvalue()


def run(*args, **env):
    process = manage(*args, env=process_env(SIGNALHUB_CONFIG_FILE="", **env), stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, text=True)
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


@pytest.mark.django_db(transaction=True, databases=["default", "archive"])
@pytest.mark.parametrize("url", ALPINE_URLS[:2])
def test_manage_py_check_and_verify_signals_mask_an_odd_alpine_url(url):
    returncode, output = run("check", ALPINE_API_URL=url)
    assert returncode == 1 and "sync.E002" in output
    assert_masked(output)
    returncode, output = run("verify_signals", "--skip-checks", ALPINE_API_URL=url)
    assert returncode == 1 and "Alpine configured and its health endpoint answering" in output
    assert_masked(output)


@pytest.mark.django_db(transaction=True, databases=["default", "archive"])
@pytest.mark.parametrize("url", REDIS_URLS)
def test_manage_py_check_and_verify_signals_mask_an_odd_redis_url(url):
    returncode, output = run("check", SIGNALHUB_REDIS_URL=url)
    assert returncode == 0, output
    assert_masked(output)
    returncode, output = run("verify_signals", SIGNALHUB_REDIS_URL=url)
    # The broker cannot be reached: django-q2 quotes what it could not parse.
    assert returncode == 1 and "cannot read the cluster status from the broker" in output, output
    assert_masked(output)
