"""System checks for the delivery settings: a bad configuration is reported, not found later."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Info, Warning, register
from django.core.exceptions import ImproperlyConfigured

from signalhub.secrets import mask_text, mask_url


def url_problem(url):
    """Return what is wrong with Alpine's base URL, or '' when it is well formed."""
    if any(character.isspace() for character in url):
        return "it contains white space"
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError on a port that is not a number in range
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if not parts.hostname:
        return "it names no host"
    if parts.query or parts.fragment:
        return "a base URL has no query or fragment"
    return ""


@register("sync")
def check_alpine_config(app_configs=None, **kwargs):
    from sync.config import alpine_config

    try:
        config = alpine_config()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="sync.E001")]
    messages = []
    problem = url_problem(config.api_url) if config.api_url else ""
    if problem:
        # Checks print on every manage.py command: neither the URL nor the parser's
        # complaint (which may quote a piece of the password) is shown raw.
        messages.append(Error(f"ALPINE_API_URL={mask_url(config.api_url)!r} is not a well-formed URL: "
                              f"{mask_text(problem, config.api_url)}.",
                              hint="Give the base URL of Alpine, e.g. https://alpine.internal:8000", id="sync.E002"))
    if not config.active:
        messages.append(Info(f"{config.off_reason}; signals wait as pending until it is on.", id="sync.I001"))
    elif not config.api_key:
        messages.append(Warning("ALPINE_API_URL is set but ARGO_API_KEY is not: only an Alpine without a key "
                                "accepts the deliveries.", id="sync.W001"))
    if settings.SIGNALHUB_SYNC_LEASE_SECONDS < 2 * settings.ALPINE_TIMEOUT + 1:
        messages.append(Warning(
            f"SIGNALHUB_SYNC_LEASE_SECONDS ({settings.SIGNALHUB_SYNC_LEASE_SECONDS:g}) should be well above "
            f"ALPINE_TIMEOUT ({settings.ALPINE_TIMEOUT:g}): a worker sends nothing it could not finish within "
            "its lease, so a short lease sends little per pass.", id="sync.W002"))
    return messages
