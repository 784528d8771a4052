"""The ledger's rules: validation, hashing, lifecycle, lookups and signal ids."""
