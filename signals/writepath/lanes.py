"""Lanes: a backlog of journal segments written side by side, one database connection each.

The flusher and recovery hand each segment to ``in_lanes``; within a segment
batches stay in order, so a done offset only ever moves over stored lines.
"""

import threading

from django.conf import settings
from django.db import connection, connections


def segment_writers() -> int:
    """How many journal segments may be written at once, each on its own connection.

    ``SIGNALHUB_FLUSH_WRITERS`` on PostgreSQL, whose backends insert side by
    side; one on SQLite, which lets one writer in at a time.
    """
    return settings.SIGNALHUB_FLUSH_WRITERS if connection.vendor == "postgresql" else 1


def in_lanes(work, items, lanes):
    """Call ``work(item)`` for each item, taken in order by up to ``lanes`` threads at once (this one too).

    Each extra thread writes on its own database connection and closes it when
    done. Once any call fails no lane takes another item; after every lane has
    stopped, the first failure is raised. Without a spare thread (interpreter
    shutdown) everything runs in this one.
    """
    queue = list(items)
    queue.reverse()  # popped from the end: oldest first
    failures = []

    def lane():
        while queue and not failures:
            try:
                item = queue.pop()
            except IndexError:  # another lane took the last one
                return
            try:
                work(item)
            except BaseException as exc:
                failures.append(exc)
                return

    def extra_lane():
        try:
            lane()
        finally:
            connections.close_all()

    threads = []
    for number in range(min(lanes, len(queue)) - 1):
        thread = threading.Thread(target=extra_lane, name=f"{threading.current_thread().name}-lane{number + 2}",
                                  daemon=True)
        try:
            thread.start()
        except RuntimeError:  # can't create new thread at interpreter shutdown
            break
        threads.append(thread)
    lane()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
