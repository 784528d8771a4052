"""The one way SignalHub shows a secret, or a URL or text that may hold one.

A URL can carry a secret in two places: the password of its user-info
(``postgres://user:PASSWORD@host``) and a query parameter
(``redis://host/0?password=...``, ``...?api_key=...``). Every command, log
line, admin page and debug page that prints a URL passes it through here.
"""

import os
import re

from django.conf import settings
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

HIDDEN = "********"

# A query or conninfo parameter whose name contains one of these words holds a
# secret (password, passwd, pwd, sslpassword, token, api_key, secret, ...).
# Masking a harmless one (sslkey, a path) costs nothing; missing one leaks it.
SECRET_NAME = re.compile(r"pass|pwd|token|secret|key|auth|credential|signature", re.IGNORECASE)

# A URL inside free text: a scheme, "://", then everything up to white space or a quote.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# name=value pairs, in a query string or a libpq conninfo ("host=db password=x").
_PAIR = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<value>[^&;\s'\"<>]*)")


def mask_secret(value):
    """Return a form of a secret safe to show: its length and, for long ones, two characters at each end."""
    value = str(value or "")
    if not value:
        return "(not set)"
    if len(value) < 16:
        return f"**** ({len(value)} characters)"
    return f"{value[:2]}****{value[-2:]} ({len(value)} characters)"


def _mask_pairs(text):
    def replace(match):
        if SECRET_NAME.search(match["name"]) and match["value"]:
            return f"{match['name']}={HIDDEN}"
        return match[0]

    return _PAIR.sub(replace, text)


def _split_userinfo(rest):
    """Return (user, password, after) of the text after ``scheme://``; password is '' when there is none.

    A password may hold "/", "?", "#" and "@", none of them escaped, and then
    no parser can tell where the authority ends. So the user-info runs to the
    LAST "@" of the URL whenever a ":" comes before it: that can hide part of
    a path or query holding an "@" too, but it never shows a password.
    """
    userinfo, at, after = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if at and colon and password:
        return user, password, after
    return None, "", rest


def mask_url(url):
    """Return ``url`` with its user-info password and secret query parameters hidden.

    Works on the text, not on a parsed URL, so a URL that does not parse (a
    bad port, a stray bracket, an unescaped "/" or "#" in the password) is
    masked all the same.
    """
    url = str(url or "")
    scheme, separator, rest = url.partition("://")
    if not separator:
        return _mask_pairs(url)
    user, password, rest = _split_userinfo(rest)
    # What follows the user-info: the host, then a path, a query and a fragment.
    end = min((index for index in (rest.find(c) for c in "/?#") if index >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if password:
        authority = f"{user}:{HIDDEN}@{authority}"
    path, question, query = tail.partition("?")
    if question:
        tail = f"{path}?{_mask_pairs(query)}"
    return f"{scheme}://{authority}{tail}"


def url_secrets(url):
    """Return the secrets ``url`` holds: its user-info password and the values of its secret parameters."""
    url = str(url or "")
    _, separator, rest = url.partition("://")
    found = []
    if separator:
        _, password, rest = _split_userinfo(rest)
        if password:
            found.append(password)
    found += [match["value"] for match in _PAIR.finditer(rest if separator else url)
              if SECRET_NAME.search(match["name"]) and match["value"]]
    return found


# Settings that hold a URL SignalHub connects to; ALPINE_API_URL is read from the environment.
CONFIGURED_URL_SETTINGS = ("DATABASE_URL", "SIGNALHUB_ARCHIVE_DATABASE_URL", "SIGNALHUB_REDIS_URL")
# A run of characters a parser or driver may quote from a URL, cut where a URL's parts meet.
_WORD = re.compile(r"[^\s'\"()\[\]{},;=:/?#@&<>]+")
# Shorter pieces are left alone: they give little away, and hiding them would hide ordinary words.
PIECE_MIN = 4


def configured_secrets():
    """Return the secrets held by the URLs SignalHub is configured with, read now (never at import)."""
    urls = [os.environ.get("ALPINE_API_URL", "")]
    if settings.configured:
        urls += [getattr(settings, name, "") or "" for name in CONFIGURED_URL_SETTINGS]
    return [secret for url in urls for secret in url_secrets(url)]


def _hide_pieces(text, secrets):
    for secret in secrets:
        text = text.replace(secret, HIDDEN)

    def replace(match):
        word = match[0]
        if len(word) >= PIECE_MIN and any(word in secret for secret in secrets):
            return HIDDEN
        return word

    return _WORD.sub(replace, text)


def mask_text(text, *urls):
    """Return ``text`` with every URL in it masked, and secret ``name=value`` pairs outside URLs too.

    A parser or driver quotes what it could not read, and that can be a piece
    of a password ("Port could not be cast to integer value as 'Hunt'"). So
    the secrets of ``urls`` and of the configured URLs are hidden as well,
    whole and by any piece of ``PIECE_MIN`` characters or more.
    """
    text = str(text)
    pieces, last = [], 0
    for match in _URL.finditer(text):
        pieces.append(_mask_pairs(text[last:match.start()]))
        pieces.append(mask_url(match[0]))
        last = match.end()
    pieces.append(_mask_pairs(text[last:]))
    text = "".join(pieces)
    secrets = [secret for url in urls for secret in url_secrets(url)] + configured_secrets()
    return _hide_pieces(text, secrets) if secrets else text


class SecretsReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, plus URL passwords and secret parameters in any text it shows.

    Django hides settings and request.META entries whose *name* looks secret
    (PASSWORD, KEY, ...); DATABASE_URL, SIGNALHUB_REDIS_URL, Q_CLUSTER's
    "redis" and ALPINE_API_URL have harmless names and secret contents.
    """

    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        if isinstance(value, str) and value != self.cleansed_substitute:
            return mask_text(value)
        return value

    def get_traceback_frame_variables(self, request, tb_frame):
        return [(name, mask_text(value) if isinstance(value, str) else value)
                for name, value in super().get_traceback_frame_variables(request, tb_frame)]


class SecretsExceptionReporter(ExceptionReporter):
    """Django's reporter, with URLs in the exception's own message masked (a driver may quote its URL)."""

    def get_traceback_data(self):
        data = super().get_traceback_data()
        if data.get("exception_value"):
            data["exception_value"] = mask_text(data["exception_value"])
        return data
