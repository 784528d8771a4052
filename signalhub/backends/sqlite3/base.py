"""Django's SQLite backend, with the database file created 0600 before SQLite first opens it.

SQLite creates a missing database file with the process's default mode
(0644 under the usual umask: readable by every local user) and gives its
-wal and -shm files the database file's mode. Creating the file 0600 first
makes all three private; this is done here, where every process (web,
cluster, commands, tests' subprocesses) opens the database, rather than by a
umask in each entry point, which would also change every other file they write.
"""

from django.db.backends.sqlite3 import base

from signalhub.private_files import create_private_file


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        name = str(conn_params.get("database") or "")
        # "file:" URIs and in-memory databases are left to SQLite.
        if name and not name.startswith("file:") and not self.creation.is_in_memory_db(name):
            try:
                create_private_file(name)
            except OSError:
                pass  # no directory, no permission: SQLite's own "unable to open database file" says so
        return super().get_new_connection(conn_params)
