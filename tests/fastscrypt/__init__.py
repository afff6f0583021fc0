"""A test-only cheap scrypt for age passphrase files (see agescrypt.py)."""
