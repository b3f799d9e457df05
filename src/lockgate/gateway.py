"""The running gateway: config, store, providers, pipeline, and the watcher that keeps caches fresh."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Callable

from anyio import to_thread

from lockgate.config import Config, ModelEntry
from lockgate.pipeline import Pipeline, build_stages
from lockgate.providers import Provider, make_provider
from lockgate.store import Store

log = logging.getLogger("lockgate")

POLL_SECONDS = 0.25  # how often the revision counter is read: bounds how stale a cache can be


class Gateway:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.catalog: dict[str, ModelEntry] = {m.name: m for m in config.models}
        # Identical upstreams share one provider (one llama.cpp instance, one connection pool).
        self._providers: dict[tuple, Provider] = {}
        self._by_model: dict[str, list[Provider]] = {}
        for m in config.models:
            provs = []
            for up in m.deployments:
                key = (up.provider, up.model, up.base_url, up.api_key)
                if key not in self._providers:
                    self._providers[key] = make_provider(up)
                provs.append(self._providers[key])
            self._by_model[m.name] = provs
        self._listeners: list[Callable[[], None]] = []
        self.revision = -1
        self.last_sync = time.monotonic()  # last successful read of the store's revision
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self.pipeline = Pipeline(build_stages(self))

    def providers_for(self, model: str) -> list[Provider]:
        return self._by_model[model]

    def on_revision(self, callback: Callable[[], None]) -> None:
        """Registers a cache-clearing callback, run whenever the store's revision moves."""
        self._listeners.append(callback)

    def _changed(self, rev: int) -> None:
        if rev != self.revision:
            self.revision = rev
            for cb in self._listeners:
                cb()

    async def _watch(self) -> None:
        self._wake = asyncio.Event()
        if self.store.is_postgres:
            loop = asyncio.get_running_loop()
            threading.Thread(target=self._listen, args=(loop,), daemon=True, name="lockgate-listen").start()
        while True:
            try:  # NOTIFY wakes us at once; the poll is the backstop when notifications are lost
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                self._changed(await to_thread.run_sync(self.store.revision))
                self.last_sync = time.monotonic()
            except Exception as e:  # a store outage must not kill the watcher
                log.warning("revision poll failed: %s", e)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """PostgreSQL LISTEN on its own connection; reconnects after failures."""
        import psycopg

        url = self.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stopping:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("LISTEN lockgate_changes")
                    while not self._stopping:
                        for _ in conn.notifies(timeout=1.0):
                            loop.call_soon_threadsafe(self._wake.set)
            except Exception as e:
                log.warning("LISTEN connection lost (%s); polling continues", e)
                time.sleep(1.0)

    async def start(self) -> None:
        self._changed(await to_thread.run_sync(self.store.revision))
        self._tasks.append(asyncio.create_task(self._watch()))
        for p in self._providers.values():
            self._tasks.append(asyncio.create_task(self._start_provider(p)))
        for stage in self.pipeline.stages:  # stages with heavy setup (classifiers) load in the background
            if hasattr(stage, "start"):
                self._tasks.append(asyncio.create_task(stage.start()))

    async def _start_provider(self, p: Provider) -> None:
        try:
            await p.start()
            log.info("upstream %s ready", p.label)
        except Exception as e:
            log.error("upstream %s failed to start: %s", p.label, e)

    def ready(self) -> dict:
        ready = {p.label: p.ready() for p in self._providers.values()}
        ready.update({f"stage:{s.name}": s.ready() for s in self.pipeline.stages if hasattr(s, "ready")})
        return ready

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for p in self._providers.values():
            await p.aclose()
        await to_thread.run_sync(self.store.dispose)
