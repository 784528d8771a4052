"""Keep a forked child off its parent's database connections.

django-q2 forks its workers from a process that has already used the
database. With PostgreSQL's connection pool, the child would inherit the
parent's pool, hand the same server sessions to two processes and read each
other's replies (garbled results, wrong row counts). Closing them in the child
is no better: psycopg would tell the server to end sessions the parent still
uses. So the child forgets what it inherited, keeping the objects referenced so
that nothing is finalized, and opens its own connections (and pool) when it
first needs one.
"""

import os

from django.db import connections

# Inherited connections and pools, kept alive and unused for the child's lifetime.
_inherited = []


def forget_inherited_connections():
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            _inherited.append(connection.connection)
            connection.connection = None
            connection.in_atomic_block = False
            connection.savepoint_ids = []
            connection.needs_rollback = False
    try:
        from django.db.backends.postgresql.base import DatabaseWrapper
    except ImportError:  # psycopg is not installed: no pools to forget
        return
    pools = DatabaseWrapper._connection_pools
    if pools:
        _inherited.append(dict(pools))
        pools.clear()


def install():
    os.register_at_fork(after_in_child=forget_inherited_connections)
