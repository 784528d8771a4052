import os

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate

# Database connections and PostgreSQL pools a forked child inherited from its
# parent: kept referenced so that they are never closed (closing would end the
# parent's session on the shared socket), and never used.
_inherited_connections = []


def _register_schedules(sender, using="default", **kwargs):
    from signalhub.schedules import ensure_schedules

    # Schedules live in the main database only (not in the archive).
    if using == "default":
        ensure_schedules(using=using)


def _forget_inherited_connections():
    """In a forked child (django-q2 forks its workers), open fresh connections instead of the parent's.

    django-q2 closes Django's connections before forking, but with the psycopg
    pool a closed connection goes back to the pool, which the child inherits
    with its live sockets: parent and children would then read each other's
    replies ("the last operation didn't produce records").
    """
    from django.db import connections
    from django.db.backends.postgresql.base import DatabaseWrapper

    _inherited_connections.append(dict(DatabaseWrapper._connection_pools))
    DatabaseWrapper._connection_pools.clear()
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            _inherited_connections.append(connection.connection)
            connection.connection = None


class SignalHubConfig(AppConfig):
    name = "signalhub"
    verbose_name = "SignalHub"

    def ready(self):
        from signalhub import checks  # noqa: F401  (registers the system checks)

        # post_migrate is sent once per app with models, after the whole plan has
        # run; listening for django_q's alone registers the schedules once.
        post_migrate.connect(_register_schedules, sender=apps.get_app_config("django_q"),
                             dispatch_uid="signalhub.register_schedules")
        os.register_at_fork(after_in_child=_forget_inherited_connections)
