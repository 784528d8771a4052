from importlib import import_module

from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Delivery to Alpine"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        import_module("sync.checks")  # registers the system checks
