"""A database's size on disk, and giving back the space of deleted rows."""

from pathlib import Path

from django.db import connections


def database_size(using):
    """Return the size in bytes of the database behind ``using`` (SQLite: the file and its WAL); None if unknown."""
    connection = connections[using]
    if connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"])
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
    return None


def reclaim_space(using, tables):
    """Give the space of deleted rows back and return how it was done.

    SQLite: VACUUM (or the incremental vacuum) of the whole file, then the WAL
    truncated. PostgreSQL: VACUUM ANALYZE of each of ``tables``.
    """
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA auto_vacuum")
            if cursor.fetchone()[0] == 2:
                cursor.execute("PRAGMA incremental_vacuum")
                how = "incremental vacuum"
            else:
                cursor.execute("VACUUM")
                how = "VACUUM"
            # VACUUM writes through the WAL; truncate it so the disk space returns too.
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return how
        if connection.vendor == "postgresql":
            for table in tables:
                cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(table)}")
            return "VACUUM ANALYZE"
    return "not supported"
