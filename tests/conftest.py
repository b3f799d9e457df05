"""Fixtures: fake upstreams, stores (SQLite always, PostgreSQL when LOCKGATE_TEST_PG_URL is set), gateways.
Plain helpers live in support.py."""

from __future__ import annotations

import os

import pytest

from fakes import FakeUpstream, ServerThread
from lockgate.store import open_store
from support import PG_URL, STORES, fake_models, fresh_database, run_gateway

if os.environ.get("CI") and not PG_URL:
    raise RuntimeError("CI must test PostgreSQL for real: set LOCKGATE_TEST_PG_URL (make test does)")


@pytest.fixture(params=STORES)
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def store_url(store_kind, tmp_path):
    with fresh_database(store_kind, tmp_path) as url:
        yield url


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def fake():
    up = FakeUpstream()
    with ServerThread(up.app) as srv:
        up.url = srv.url
        yield up


@pytest.fixture
def gateway(fake, store):
    with run_gateway({"models": fake_models(fake.url)}, store) as gw:
        yield gw
