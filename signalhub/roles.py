"""The two staff roles SignalHub's admin knows, as Django groups that ``bootstrap`` keeps up to date.

A staff login with no group (and not a superuser) sees an empty admin.
The viewers' list is every SignalHub model the admin shows; django_q's task
pages are left out on purpose, since their "resubmit" action is offered to
anyone who may view them.
"""

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

VIEWERS = "Signal viewers"
OPERATORS = "Delivery operators"

# (app label, model) of every SignalHub model registered in the admin.
VIEWED_MODELS = (
    ("signals", "signal"),
    ("signals", "archivedsignal"),
    ("signals", "signalconflict"),
    ("signals", "quarantinedrecord"),
    ("sync", "delivery"),
    ("sync", "deliveryattempt"),
    ("sync", "destination"),
)
VIEW_PERMISSIONS = tuple((app_label, f"view_{model}") for app_label, model in VIEWED_MODELS)
OPERATE_PERMISSIONS = (("sync", "operate_delivery"),)

ROLES = {
    VIEWERS: VIEW_PERMISSIONS,
    OPERATORS: VIEW_PERMISSIONS + OPERATE_PERMISSIONS,
}


def _permissions(pairs):
    wanted = set(pairs)
    found = {(p.content_type.app_label, p.codename): p
             for p in Permission.objects.filter(codename__in={codename for _app, codename in wanted})
             .select_related("content_type")}
    missing = sorted(wanted - set(found))
    if missing:
        # Permissions are created by migrate; a missing one means a model or
        # migration is missing, and a group without it would quietly lack a right.
        raise ImproperlyConfigured("Missing permissions (run migrate first): "
                                   + ", ".join(f"{app}.{codename}" for app, codename in missing))
    return [found[pair] for pair in sorted(wanted)]


@transaction.atomic
def ensure_roles():
    """Create the role groups if missing and set each one's permissions to exactly its list.

    Return ``{group name: created}``. Permissions added to a group by hand are
    taken away again: the list here is the definition of the role.
    """
    created = {}
    for name, pairs in ROLES.items():
        group, created[name] = Group.objects.get_or_create(name=name)
        group.permissions.set(_permissions(pairs))
    return created
