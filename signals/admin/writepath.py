"""Read-only admin for what the write path could not store as a signal (machine-written rows)."""

from django.contrib import admin

from signalhub.admin_mixins import CheckedAdminMixin, ReadOnlyAdminMixin

from signals.models import QuarantinedRecord, SignalConflict


@admin.register(SignalConflict)
class SignalConflictAdmin(CheckedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("signal_id", "occurrences", "source", "first_seen", "last_seen")
    search_fields = ("=signal_id",)
    readonly_fields = ("signal_id", "stored", "incoming", "incoming_digest", "source", "occurrences", "first_seen", "last_seen")


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(CheckedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "source", "reason")
    search_fields = ("source", "reason")
    readonly_fields = ("created_at", "source", "reason", "raw", "fingerprint")
