"""Alembic migrations for the ServiceGrid database (run through ``storage.db.upgrade``)."""
