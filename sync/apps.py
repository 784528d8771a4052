from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Delivery to Alpine"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from sync import checks  # noqa: F401  (registers the system checks)
