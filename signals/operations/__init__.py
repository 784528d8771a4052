"""Operations on the ledger: archive and restore, monitoring, verification and demo data."""
