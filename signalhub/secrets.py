"""The one way SignalHub shows a secret, or a URL or text that may hold one.

A URL can carry a secret in two places: the password of its user-info
(``postgres://user:PASSWORD@host``) and a query parameter
(``redis://host/0?password=...``, ``...?api_key=...``). Every command, log
line, admin page and debug page that prints a URL passes it through here.
"""

import re

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


def mask_url(url):
    """Return ``url`` with its user-info password and secret query parameters hidden.

    Works on the text, not on a parsed URL, so a URL that does not parse (a
    bad port, a stray bracket) is masked all the same.
    """
    url = str(url or "")
    scheme, separator, rest = url.partition("://")
    if not separator:
        return _mask_pairs(url)
    # The authority ends at the first "/", "?" or "#"; a password may hold "@",
    # so the user-info ends at the authority's last "@" (as urllib reads it).
    end = min((index for index in (rest.find(c) for c in "/?#") if index >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, host = authority.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if colon and password:
            authority = f"{user}:{HIDDEN}@{host}"
    path, question, query = tail.partition("?")
    if question:
        tail = f"{path}?{_mask_pairs(query)}"
    return f"{scheme}://{authority}{tail}"


def mask_text(text):
    """Return ``text`` with every URL in it masked, and secret ``name=value`` pairs outside URLs too."""
    text = str(text)
    pieces, last = [], 0
    for match in _URL.finditer(text):
        pieces.append(_mask_pairs(text[last:match.start()]))
        pieces.append(mask_url(match[0]))
        last = match.end()
    pieces.append(_mask_pairs(text[last:]))
    return "".join(pieces)


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
