"""The shop's PostgreSQL database backend (ENGINE "config.database", see base.py)."""
