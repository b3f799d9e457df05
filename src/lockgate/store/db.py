"""Engine, sessions and the change counter, for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from importlib import resources
from typing import Iterator

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from lockgate.store.models import Revision

_MIGRATE_LOCK = 743_221  # pg advisory lock id: replicas starting together migrate one at a time


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _dumps(obj) -> str:
    return orjson.dumps(obj).decode()


def make_engine(url: str) -> Engine:
    # orjson for JSON columns: principals' attributes are decoded on every plan and cache miss.
    kw = {"json_serializer": _dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10}, **kw)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kw)


class Store:
    """One per process. Sync SQLAlchemy; the gateway calls it from worker threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._lock = threading.Lock()

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def migrate(self) -> None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(resources.files("lockgate.store") / "migrations"))
        with self.engine.begin() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions.begin() as s:
            yield s

    @contextmanager
    def change(self) -> Iterator[Session]:
        """A write transaction that running gateways must notice: bumps the revision counter."""
        with self.sessions.begin() as s:
            yield s
            s.execute(update(Revision).where(Revision.id == 1).values(value=Revision.value + 1))
            if self.is_postgres:
                s.execute(text("NOTIFY lockgate_changes"))

    def revision(self) -> int:
        with self.engine.connect() as c:
            return c.execute(select(Revision.value).where(Revision.id == 1)).scalar_one()

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str, migrate: bool = True) -> Store:
    store = Store(url)
    if migrate:
        store.migrate()
    return store
