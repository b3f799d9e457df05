"""Persistent state: SQLAlchemy 2 models, Alembic migrations, one engine per process."""

from lockgate.store.db import Store, open_store

__all__ = ["Store", "open_store"]
