"""Pieces shared by SignalHub's admins: read-only rows, permission-checked actions, declared lookups."""

import re

from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, SuspiciousOperation
from django.db import models
from django.utils.text import smart_split

# Operating deliveries (retry, cancel, resume, retry dead since) and exporting the ledger.
OPERATE_DELIVERY = "sync.operate_delivery"

# A query parameter may be named back to the user only when it looks like one of ours.
_PLAIN_PARAMETER = re.compile(r"[A-Za-z0-9_]{1,64}")
# Words of a search that Django's search turns into conditions: each word is an
# OR over the search fields, and thousands of them make SQLite refuse the query
# ("Expression tree is too large"), a 500.
SEARCH_WORDS_MAX = 10


class NulInQuery(SuspiciousOperation):
    """A query key or value holds a NUL: PostgreSQL refuses it in any text parameter, so it is a 400, not a 500."""


def nul_parameter(query):
    """Return the first key of ``query`` (a QueryDict) whose name or one of whose values holds a NUL, else None."""
    for key, values in query.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return key
    return None


def refuse_nul(*queries):
    """Raise NulInQuery if a key or value of ``queries`` holds a NUL (Django answers it with a 400)."""
    for query in queries:
        key = nul_parameter(query)
        if key is not None:
            raise NulInQuery(f"A NUL character in the query parameter {parameter_name_for_display(key)}.")


def may_operate_deliveries(user):
    return user.is_active and user.is_staff and user.has_perm(OPERATE_DELIVERY)


def parameter_name_for_display(name):
    """Return ``name`` quoted if it is a plain identifier, else a description that echoes none of it."""
    return f"'{name}'" if _PLAIN_PARAMETER.fullmatch(name) else "a parameter that is not a filter"


class ReadOnlyAdminMixin:
    """Rows written by machines (the ledger, deliveries, the journal's leftovers): staff look and act, never edit."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OperateDeliveryPermissionMixin:
    """Actions declared with ``permissions=("operate_delivery",)`` are offered only to holders of it."""

    def has_operate_delivery_permission(self, request, obj=None):
        return may_operate_deliveries(request.user)


class CheckedAdminMixin:
    """Refuse what a hand-written URL or POST could make the admin do beyond what its pages offer.

    - A POST naming an action this user is not offered is a 403. Without this,
      Django answers it with a re-rendered list or "no action selected", which
      hides that it was refused.
    - Only the declared ``list_filter`` parameters are accepted as lookups.
      Django's default accepts any lookup on a local field, so a view-only
      user could run ``reasoning__regex=...`` (a full scan and a regular
      expression per row). Anything else raises ``DisallowedModelAdminLookup``,
      which Django answers with a 400.
    - A NUL anywhere in the query (a filter, the search, an autocomplete term)
      is a 400: PostgreSQL would refuse it with a DataError, a 500.
    - Django's word search uses at most ``SEARCH_WORDS_MAX`` words, and says so.
    """

    def changelist_view(self, request, extra_context=None):
        refuse_nul(request.GET, request.POST)
        if request.method == "POST":
            name = request.POST.get("action")
            if name and name not in self.get_actions(request):
                raise PermissionDenied
        return super().changelist_view(request, extra_context=extra_context)

    def get_search_results(self, request, queryset, search_term):
        # Also the autocomplete view's way in: it searches with the related model's admin.
        refuse_nul(request.GET)
        words = list(smart_split(search_term))
        if len(words) > SEARCH_WORDS_MAX:
            messages.warning(request, f"Searched for the first {SEARCH_WORDS_MAX} words only: {len(words)} were given.",
                             fail_silently=True)
            search_term = " ".join(words[:SEARCH_WORDS_MAX])
        return super().get_search_results(request, queryset, search_term)

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in self.declared_lookups(request)

    def declared_lookups(self, request):
        """Return the query parameters this admin's declared filters read."""
        allowed = set()
        for item in self.get_list_filter(request):
            if isinstance(item, type) and issubclass(item, admin.SimpleListFilter):
                allowed.add(item.parameter_name)
                continue
            path = item[0] if isinstance(item, (list, tuple)) else item
            allowed |= self._field_filter_lookups(path)
        return allowed

    def _field_filter_lookups(self, path):
        # The parameters Django's field filters put in their links, and the bare
        # name (an exact match), which pages link to directly (?state=dead).
        try:
            field = get_fields_from_path(self.model, path)[-1]
        except FieldDoesNotExist:
            return set()
        lookups = {path, f"{path}__exact", f"{path}__isnull"}
        if isinstance(field, models.DateField):
            lookups |= {f"{path}__gte", f"{path}__lt"}
        if field.is_relation:
            lookups.add(f"{path}__{field.target_field.name}__exact")
        return lookups
