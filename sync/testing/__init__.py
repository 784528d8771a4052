"""A local Alpine for development, demos and tests."""
