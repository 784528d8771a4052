"""Lookups used by the ledger's check constraints, written per database.

Django has no portable "only these characters" lookup. The obvious
``__regex`` becomes REGEXP on SQLite, a function only Django's own connections
define, so any other client (sqlite3 shell, a bulk loader) could not write to
the table. GLOB and ``~`` are built into each engine.
"""

from django.db import NotSupportedError
from django.db.models import CharField, Lookup, TextField
from django.db.models.functions import Length

CharField.register_lookup(Length)
TextField.register_lookup(Length)


class _VendorLookup(Lookup):
    def as_sql(self, compiler, connection):
        raise NotSupportedError(f"The {self.lookup_name!r} lookup supports SQLite and PostgreSQL only.")


@CharField.register_lookup
@TextField.register_lookup
class OnlyChars(_VendorLookup):
    """``field__onlychars="A-Z0-9"``: every character is in the bracket class given.

    The class is written once and used inside ``[^...]`` on both engines, so
    keep ``-`` last and do not start it with ``^``.
    """

    lookup_name = "onlychars"

    def as_sqlite(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"NOT ({lhs} GLOB %s)", (*lhs_params, f"*[^{self.rhs}]*")

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} !~ %s", (*lhs_params, f"[^{self.rhs}]")


@CharField.register_lookup
@TextField.register_lookup
class NoControlChars(_VendorLookup):
    """``field__nocontrolchars=True``: no ASCII control character (0x01-0x1f, 0x7f)."""

    lookup_name = "nocontrolchars"

    def as_sqlite(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"NOT ({lhs} GLOB '*[' || char(1) || '-' || char(31) || char(127) || ']*')", lhs_params

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} !~ '[[:cntrl:]]'", lhs_params
