"""Read-only admin for what the write path could not store as a signal (machine-written rows)."""
from django.contrib import admin

from signals.models import QuarantinedRecord, SignalConflict


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SignalConflict)
class SignalConflictAdmin(ReadOnlyAdmin):
    list_display = ("signal_id", "occurrences", "source", "first_seen", "last_seen")
    search_fields = ("=signal_id",)
    readonly_fields = ("signal_id", "stored", "incoming", "incoming_digest", "source", "occurrences", "first_seen", "last_seen")


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "source", "reason")
    search_fields = ("source", "reason")
    readonly_fields = ("created_at", "source", "reason", "raw", "fingerprint")
