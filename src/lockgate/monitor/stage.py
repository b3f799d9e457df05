"""MonitorStage (right after identity): enforces throttles on the request path, observes off it.

on_request reads an in-memory view of the throttles in force (reloaded when the store's revision
moves, at least every second); only a throttled subject costs a store round trip. on_finish turns the
request's safeguard verdicts / refusal into a job for one background worker, which embeds the prompt
when warranted, matches it against known jailbreak templates and climbs the ladder.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from anyio import to_thread

from lockgate import monitor
from lockgate.context import RequestContext
from lockgate.errors import GatewayError
from lockgate.monitor import alert, incidents
from lockgate.monitor.settings import MonitorSettings
from lockgate.pipeline import BaseStage

log = logging.getLogger("lockgate.monitor")
VIEW_SECONDS = 1.0
MAX_TEXT = 4000  # MiniLM reads 256 tokens; the head of a jailbreak wrapper is what identifies it


class MonitorStage(BaseStage):
    name = "monitor"

    def __init__(self, gateway) -> None:
        self.gw = gateway
        self.st = MonitorSettings.of(gateway.config)
        self.view: dict[str, int] = {}
        self._loaded = 0.0  # monotonic time of the last view load; 0 = must reload before use
        self._loading: asyncio.Future | None = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._library = None
        self._alerts: set[asyncio.Task] = set()
        self.dropped = 0
        gateway.on_revision(self._stale)

    def _stale(self) -> None:
        self._loaded = 0.0

    def _set_view(self, view: dict[str, int]) -> None:
        self.view, self._loaded = view, time.monotonic()

    async def _fresh_view(self) -> dict[str, int]:
        age = time.monotonic() - self._loaded
        if age > VIEW_SECONDS:
            if self._loading is None or self._loading.done():
                self._loading = asyncio.ensure_future(to_thread.run_sync(incidents.view, self.gw.store))
                self._loading.add_done_callback(self._loaded_cb)
            if self._loaded == 0.0:  # after a change: wait, so a new throttle applies at once
                await asyncio.shield(self._loading)
        return self.view

    def _loaded_cb(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self._set_view(fut.result())
        elif not fut.cancelled():
            log.warning("loading throttles failed: %s", fut.exception())

    def subject(self, ctx: RequestContext) -> str | None:
        sid = getattr(ctx.principal, "id", None) if self.st.scope == "principal" else ctx.key_id
        return f"{self.st.scope}:{sid}" if sid else None

    async def on_request(self, ctx: RequestContext):
        if not self.st.enabled or ctx.principal is None:
            return None
        subject = self.subject(ctx)
        try:
            view = await self._fresh_view()
        except Exception as e:  # store down: the store-dependent stages fail the request anyway
            log.warning("throttle view unavailable: %s", e)
            view = self.view
        rpm = view.get(subject) if subject else None
        if rpm is None:
            return None
        wait = await to_thread.run_sync(incidents.take, self.gw.store, subject, rpm, monitor.now())
        if wait is not None:
            ctx.extra["monitor_throttled"] = True
            raise GatewayError(429, f"Requests from {subject} are throttled to {rpm} per minute after repeated "
                               "safeguard hits; an operator can lift this.", headers={"retry-after": str(wait)},
                               code="throttled")
        return None

    async def on_finish(self, ctx: RequestContext) -> None:
        if not self.st.enabled or ctx.principal is None or ctx.extra.get("monitor_throttled"):
            return
        hits = [s for s in ctx.safeguards if s.get("domain")]  # domain None: a classifier failure
        refusal = ctx.finish_reason == "content_filter"
        text = ctx.req.text()[:MAX_TEXT] if ctx.req is not None else ""
        embed = bool(text) and (hits or refusal or len(text) >= self.st.embed_min_chars
                                or (self.st.sample_rate and random.random() < self.st.sample_rate))
        if not (hits or refusal or embed):
            return
        top = max(hits, key=lambda s: s.get("score") or 0, default=None)
        p = ctx.principal
        job = {"at": monitor.now(), "principal": p.id, "org": getattr(p, "org", None), "key_id": ctx.key_id,
               "request_id": ctx.request_id, "kinds": [k for k, v in (("safeguard", hits), ("refusal", refusal)) if v],
               "domain": top and top.get("domain"), "score": top and top.get("score"), "text": text if embed else None}
        self._start()
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:  # under a flood the monitor sheds, the request path never waits
            self.dropped += 1
            if self.dropped % 100 == 1:
                log.warning("monitor queue full: %d jobs dropped", self.dropped)

    def _start(self) -> None:
        if self._worker is None:
            self._queue = asyncio.Queue(self.st.queue_size)
            self._worker = asyncio.create_task(self._work())
            getattr(self.gw, "_tasks", []).append(self._worker)  # cancelled by Gateway.stop()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                alerts = await to_thread.run_sync(self.process, job)
            except Exception as e:  # a store outage loses this observation, not the worker
                log.error("monitor: %s not recorded: %s", job["request_id"], e)
                continue
            for a in alerts:
                if self.st.webhook_url:
                    t = asyncio.create_task(alert.post(self.st.webhook_url, a, self.st.webhook_timeout_s))
                    self._alerts.add(t)
                    t.add_done_callback(self._alerts.discard)

    def process(self, job: dict) -> list[dict]:
        """Worker thread: jailbreak similarity, then the store (event, ladder, incident, audit)."""
        text, kinds = job.pop("text"), list(job.pop("kinds"))
        sim = tmpl = None
        if text:
            sim, tmpl = self.match(text)
            if sim >= self.st.jailbreak_similarity:
                kinds.append("jailbreak")
            else:
                tmpl = None
        if not kinds:
            return []
        ev = {**job, "kinds": ",".join(kinds), "similarity": None if sim is None else round(sim, 4),
              "template": tmpl}
        return incidents.observe(self.gw.store, self.st, ev, self._set_view)

    def match(self, text: str) -> tuple[float, str]:
        from lockgate.monitor.library import Library
        from lockgate.safeguards.embed import get_minilm

        if self._library is None:
            self._library = Library.load()
        return self._library.nearest(get_minilm().encode([text])[0])
