"""The public ingest API generators call; the write path itself lives in ``signals.writepath.ingest``."""

from signals.writepath.ingest import (
    JournalUnavailable,
    aflush_pending,
    current_ingestor,
    flush_pending,
    get_ingestor,
    log_signal,
    log_signals,
)

__all__ = ["JournalUnavailable", "aflush_pending", "current_ingestor", "flush_pending", "get_ingestor", "log_signal",
           "log_signals"]
