"""System checks for the delivery settings: a bad configuration is reported, not found later."""

from django.conf import settings
from django.core.checks import Error, Info, Warning, register
from django.core.exceptions import ImproperlyConfigured


@register("sync")
def check_alpine_config(app_configs=None, **kwargs):
    from sync.config import alpine_config

    try:
        config = alpine_config()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="sync.E001")]
    messages = []
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
