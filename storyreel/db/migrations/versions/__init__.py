"""Alembic revisions; files are loaded by path, so their names need not be identifiers."""
