"""Pieces shared by SignalHub's admins."""


class ReadOnlyAdminMixin:
    """Rows written by machines (the ledger, deliveries, the journal's leftovers): staff look and act, never edit."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
