"""The durable write path: the ingest API and its flusher, the journal and its segments, the writer with each
database's SQL in a module of its own, the lanes, recovery and the importers."""
