"""Alembic migrations of the record database (a package so that it ships in the wheel)."""
