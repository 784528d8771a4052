"""The durable write path: the ingest API and flusher, the journal, the writer, recovery and the importers."""
