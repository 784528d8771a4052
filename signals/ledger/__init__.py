"""The ledger's rules: the field catalogue, validation, hashing, lifecycle, lookups and signal ids."""
