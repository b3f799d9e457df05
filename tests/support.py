"""Test support shared by the suite: databases, fake upstreams, gateways running for real on 127.0.0.1.

Imported as `support` (not from conftest: pytest may load several conftest modules under that name)."""

from __future__ import annotations

import os
import time
import uuid
from contextlib import contextmanager

import httpx
import sqlalchemy as sa

from fakes import ServerThread
from lockgate import config as cfg
from lockgate.app import create_app
from lockgate.identity import keys, principals

PG_URL = os.environ.get("LOCKGATE_TEST_PG_URL")  # e.g. postgresql+psycopg://postgres@127.0.0.1:54329/postgres
STORES = ["sqlite"] + (["postgresql"] if PG_URL else [])


@contextmanager
def fresh_database(kind: str, tmp_path):
    """A new, empty database of the given kind; dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'lg-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = "lg_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def fake_models(fake_url: str) -> list[dict]:
    return [
        {"name": "gpt-fake", "upstream": {"provider": "openai", "model": "echo", "base_url": f"{fake_url}/v1"},
         "price": {"input_per_mtok": 1, "output_per_mtok": 2}},
        {"name": "claude-fake", "upstream": {"provider": "anthropic", "model": "echo", "base_url": fake_url}},
    ]


class RunningGateway:
    def __init__(self, server: ServerThread, store) -> None:
        self.server, self.store, self.url = server, store, server.url

    def key(self, principal_id: str = "alice", org: str | None = "acme", **attrs) -> str:
        try:
            principals.add_principal(self.store, principal_id, principal_id, org, attrs or None)
        except principals.Exists:
            pass
        secret, _ = keys.create_key(self.store, principal_id)
        return secret


@contextmanager
def run_gateway(conf: dict, store, wait_ready: bool = True):
    app = create_app(cfg.Config.model_validate(conf), store)
    with ServerThread(app) as srv:
        deadline = time.time() + 120
        while wait_ready and httpx.get(srv.url + "/readyz").status_code != 200:
            assert time.time() < deadline, httpx.get(srv.url + "/readyz").text
            time.sleep(0.05)
        yield RunningGateway(srv, store)
