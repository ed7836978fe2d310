"""The usage ledger (SPEC §11): hourly totals per caller and model, in SQLite in the home directory."""
