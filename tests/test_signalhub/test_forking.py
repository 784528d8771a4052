"""A forked child (a django-q2 worker) opens its own database session, never its parent's."""

import os

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def _backend_identity():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]
        cursor.execute("SELECT 1")
        return id(connection.connection)


def test_forked_child_uses_a_session_of_its_own():
    parent_session = _backend_identity()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its session, then leave without running pytest's teardown
        try:
            os.close(read)
            child_session = _backend_identity()
            os.write(write, str(child_session).encode())
        finally:
            os._exit(0)
    os.close(write)
    reported = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert reported, "the child could not query the database"
    assert int(reported) != parent_session
    # The parent's own session is untouched by the child.
    assert _backend_identity() == parent_session
