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


# The session's result is settled once pytest has reported it. Interpreter teardown after that runs native
# finalisers (llama.cpp, torch, tokenizers); once in session 10 one crashed there (exit 139 after "411 passed",
# no Python stack, cause not found), which would turn a green run red. So the test process ends without that
# teardown, with pytest's own exit status. The gateway itself still shuts down normally (SIGTERM checked with
# `make run`); this applies to the test process only.
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if _EXIT_STATUS and not os.environ.get("LOCKGATE_TEST_FULL_TEARDOWN"):
        import sys

        from lockgate.providers import local

        local._close_loaded()  # what atexit would do first: free the models while their bindings are intact
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
