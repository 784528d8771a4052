from django.apps import AppConfig


class SignalsConfig(AppConfig):
    name = "signals"
    verbose_name = "Signal ledger"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from signals import admin_archive  # noqa: F401  (registers the read-only archived signals admin)
