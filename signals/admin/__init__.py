"""The ledger's admin: signals, archived signals and the write path's rows, with filters, paging and export."""

# Django's autodiscovery imports this package; importing each module registers its admin.
from signals.admin import archive, signals, writepath

__all__ = ["archive", "signals", "writepath"]
