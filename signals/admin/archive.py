"""Archived signals in the admin: read-only, read from the archive database.

Registered by Django's admin autodiscovery (``signals/admin/__init__.py``),
next to the Signal admin. Rows move back with ``manage.py restore_signals``.
"""

from django.contrib import admin

from signalhub.admin_mixins import CheckedAdminMixin, ReadOnlyAdminMixin
from signals.models import ArchivedSignal


@admin.register(ArchivedSignal)
class ArchivedSignalAdmin(CheckedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("signal_id", "symbol", "action", "entry_price", "confidence", "outcome", "timestamp", "created_at")
    list_filter = ("action", "outcome")
    # Exact matches, so the unique signal_id index and idx_symbol_created serve them.
    search_fields = ("=signal_id", "=symbol", "=order_id")
    ordering = ("-created_at",)
    # No COUNT(*) of the whole archive on every page.
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).using("archive")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]
