"""Routing stage: pick a deployment of ctx.model, call it, fail over along the model's fallback chain.

The first event is awaited here, before any byte goes to the client, so a failure up to that point gets
a proper HTTP status or an invisible failover; after it, see chain.follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import AsyncIterator

from anyio import to_thread
from pydantic import BaseModel, ConfigDict

from lockgate.chat import Event
from lockgate.context import RequestContext
from lockgate.errors import UpstreamError
from lockgate.pipeline import BaseStage
from lockgate.routing import withdrawn as wstore
from lockgate.routing.balancer import Balancer, Deployment
from lockgate.routing.chain import follow, walk

log = logging.getLogger("lockgate.routing")


class Settings(BaseModel):
    """`routing:` in the config file."""

    model_config = ConfigDict(extra="forbid")
    deadline: float = 60.0  # seconds for a whole chain, retries and fallbacks included
    retries: int = 1  # extra tries of a model after a 5xx, with jittered backoff
    retry_backoff: float = 0.05
    breaker_failures: int = 5  # consecutive outages that open a deployment's breaker
    breaker_cooldown: float = 10.0  # seconds open before one half-open probe
    max_hold: float = 60.0  # cap on an upstream's Retry-After
    capacity_retry_after: float = 1.0  # Retry-After sent with our own 429
    spill_on_capacity: bool = False  # primary full: 429 (default) or go down the fallback chain
    probe_interval: float = 30.0  # seconds between checks of withdrawn deployments; 0 disables
    incident_webhook: str | None = None  # POSTed a JSON incident when a model is withdrawn or restored


class RoutingStage(BaseStage):
    name = "routing"

    def __init__(self, gateway) -> None:
        self.gw = gateway
        self.settings = Settings.model_validate(gateway.config.routing)
        self.balancer = Balancer(gateway, self.settings.breaker_failures, self.settings.breaker_cooldown)
        self.counters: Counter[str] = Counter()  # failover | resumed | exhausted | withdrawn | restored
        self._pending: dict[tuple[str, str], dict] = {}  # withdrawn here, not yet in the store
        self._reload_task: asyncio.Task | None = None
        self._probe_task: asyncio.Task | None = None
        self._bg: set[asyncio.Task] = set()
        self.balancer.withdrawn = wstore.load_withdrawn(gateway.store)
        gateway.on_revision(self._on_revision)

    async def on_request(self, ctx: RequestContext) -> AsyncIterator[Event]:
        entry = self.gw.catalog[ctx.model]
        chain = list(dict.fromkeys([entry.name, *entry.fallbacks]))
        served = await walk(self, ctx, ctx.req, chain, admit_first=False,
                            deadline=time.monotonic() + self.settings.deadline)
        return follow(self, ctx, chain, served, resume=entry.resume)

    def count(self, what: str) -> None:
        self.counters[what] += 1

    # -- failures --------------------------------------------------------------------------------
    def failed(self, dep: Deployment, e: UpstreamError) -> None:
        if e.kind == "withdrawn":
            dep.breaker.release()
            self.withdraw(dep, e.message, e.upstream_status)
        elif e.upstream_status == 429:
            dep.breaker.release()
            dep.breaker.hold(min(e.retry_after or 1.0, self.settings.max_hold))
        else:
            dep.breaker.failure()

    def withdraw(self, dep: Deployment, reason: str, status: int | None) -> None:
        key = (dep.model, dep.key)
        if key in self.balancer.withdrawn:
            return
        row = {"model": dep.model, "deployment": dep.key, "state": "withdrawn", "reason": reason,
               "upstream_status": status}
        self.balancer.withdrawn[key] = self._pending[key] = row
        self._spawn(self._persist(dep, reason, status))

    async def _persist(self, dep: Deployment, reason: str, status: int | None) -> None:
        key = (dep.model, dep.key)
        try:
            first = await to_thread.run_sync(wstore.mark_withdrawn, self.gw.store, dep.model, dep.key, reason, status)
        except Exception as e:  # the store is down: still withdrawn here, and still an incident
            log.warning("could not record withdrawal of %s in the store: %s", dep.key, e)
            first = True
        finally:
            self._pending.pop(key, None)
        if first:  # one incident per withdrawal across replicas: the replica that recorded it raises it
            self.incident("withdrawn", dep.model, dep.key, reason)

    def incident(self, kind: str, model: str, deployment: str, detail: str) -> None:
        self.count(kind)
        log.error("incident: model %s deployment %s %s: %s", model, deployment, kind, detail[:300])
        url = self.settings.incident_webhook
        if url:
            body = {"incident": kind, "model": model, "deployment": deployment, "detail": detail[:1000],
                    "at": time.time()}
            self._spawn(_post(url, body))

    # -- keeping current -------------------------------------------------------------------------
    def _spawn(self, coro) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)

    def _on_revision(self) -> None:
        if self._probe_task is None and self.settings.probe_interval > 0:
            from lockgate.routing.probe import probe_loop

            self._probe_task = asyncio.get_running_loop().create_task(probe_loop(self))
            self.gw._tasks.append(self._probe_task)  # cancelled with the gateway's own tasks
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> None:
        try:
            rows = await to_thread.run_sync(wstore.load_withdrawn, self.gw.store)
        except Exception as e:
            log.warning("reload of withdrawn models failed: %s", e)
            return
        self.balancer.withdrawn = {**rows, **self._pending}

    def status(self) -> list[dict]:
        """Per deployment: load, breaker, withdrawn; for an admin view or metrics."""
        out = []
        for model, deps in self.balancer.by_model.items():
            for d in deps:
                out.append({"model": model, "deployment": d.key, "inflight": d.provider.inflight,
                            "max_concurrency": d.upstream.max_concurrency, "breaker": d.breaker.state,
                            "withdrawn": self.balancer.is_withdrawn(d)})
        return out


async def _post(url: str, body: dict) -> None:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=5) as c:
            await c.post(url, json=body)
    except Exception as e:
        log.warning("incident webhook %s failed: %s", url, e)
