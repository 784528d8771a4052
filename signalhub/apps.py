from importlib import import_module

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def _register_schedules(sender, using="default", **kwargs):
    from signalhub.schedules import ensure_schedules

    # Schedules live in the main database only (not in the archive).
    if using == "default":
        ensure_schedules(using=using)


class SignalHubConfig(AppConfig):
    name = "signalhub"
    verbose_name = "SignalHub"

    def ready(self):
        import_module("signalhub.checks")  # registers the system checks
        from signalhub import forking

        # django-q2 forks its workers; each must open its own database connections.
        forking.install()
        # post_migrate is sent once per app with models, after the whole plan has
        # run; listening for django_q's alone registers the schedules once.
        post_migrate.connect(_register_schedules, sender=apps.get_app_config("django_q"),
                             dispatch_uid="signalhub.register_schedules")
