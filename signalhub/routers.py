"""Keep ordinary queries on the main database and only the ledger's tables in the archive.

Nothing is routed to the archive implicitly: archiving and restoring name the
alias (``.using("archive")``) on every query, so a forgotten ``using`` reads or
writes the main database, never the archive by surprise.
"""

# Apps whose tables exist in the archive: the ledger and, once installed, the
# sync app's delivery rows that move with their signals.
ARCHIVED_APPS = {"signals", "sync"}
ARCHIVE = "archive"


class ArchiveRouter:
    # No db_for_read/db_for_write: Django then uses the instance's own database
    # (related rows of an archived signal are read from the archive) or default.

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db == ARCHIVE:
            return app_label in ARCHIVED_APPS
        return None
