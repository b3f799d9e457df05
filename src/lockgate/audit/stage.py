"""AuditStage (last in the chain): the record of every request, durable before the answer completes.

When the final Done event passes, the record is appended to the local journal (one write) and queued
for the group commit; Done is released only after the journal write (with `audit.fsync`, its fdatasync):
"the client got a complete answer" implies "the record survives a kill -9". Without a journal, Done
waits for the group commit. Requests that end otherwise are recorded in on_finish without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import AsyncIterator, Callable

from lockgate import config
from lockgate.audit import content, metrics
from lockgate.audit.chain import Entry
from lockgate.audit.journal import Journal, directory
from lockgate.audit.record import request_body
from lockgate.audit.settings import AuditSettings
from lockgate.audit.writer import Writer
from lockgate.chat import Delta, Done, Event
from lockgate.context import RequestContext
from lockgate.errors import GatewayError
from lockgate.pipeline import BaseStage

log = logging.getLogger("lockgate.audit")


class AuditStage(BaseStage):
    name = "audit"

    def __init__(self, gateway, clock: Callable[[], datetime] | None = None) -> None:
        self.gw = gateway
        self.settings = AuditSettings.of(gateway.config)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.key = content.content_key() if self.settings.content else None
        self._last_purge = time.monotonic()
        self.writer = Writer(gateway.store, self.settings.checkpoint_seconds, self.settings.max_batch,
                             self.settings.fsync, on_idle=self._housekeeping, journal=self._journal(),
                             linger=self.settings.commit_linger)
        self._lifetime: asyncio.Task | None = None

    def _journal(self) -> Journal | None:
        if not self.settings.journal:
            return None
        url = self.gw.store.engine.url.render_as_string(hide_password=True)
        return Journal(directory(config.home(), url), self.settings.replica_id, self.settings.fsync)

    async def start(self) -> None:
        """At gateway start: the writer replays what a killed predecessor journaled, before any request."""
        self._start()

    def _start(self) -> None:
        if self._lifetime is None:
            self.writer.start()
            self._lifetime = asyncio.create_task(self._until_stopped())
            # Gateway.stop() cancels its tasks; that is our cue to drain the queue and sign the tail.
            getattr(self.gw, "_tasks", []).append(self._lifetime)

    async def _until_stopped(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self.writer.stop()

    def _housekeeping(self) -> None:
        if self.settings.content and time.monotonic() - self._last_purge >= self.settings.purge_seconds:
            self._last_purge = time.monotonic()
            n = content.purge(self.gw.store, self.settings.content_days, self.clock())
            if n:
                log.info("retention: purged the content of %d request(s)", n)

    def _entry(self, ctx: RequestContext, done: Done | None, answer: str) -> Entry:
        sealed, digest = None, None
        if self.key is not None and ctx.req is not None and ctx.principal is not None:
            req = ctx.req
            doc = {"system": req.system, "messages": [{"role": m.role, "content": m.content} for m in req.messages],
                   "answer": answer}
            sealed, digest = content.seal(ctx.request_id, doc, self.key)
        body = request_body(ctx, done.usage if done else None, digest)
        if done is not None:
            body["finish_reason"] = done.finish_reason
        ctx.extra["audit"] = body
        return Entry("request", self.clock(), body, ctx.request_id, sealed)

    def on_stream(self, ctx: RequestContext, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        return self._wrap(ctx, events)

    async def _wrap(self, ctx: RequestContext, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        parts: list[str] = []
        async for ev in events:
            if isinstance(ev, Done):
                self._start()
                try:
                    wait = self.writer.durable(self._entry(ctx, ev, "".join(parts)))
                    if wait is not None:
                        await asyncio.wrap_future(wait)
                except Exception as e:  # no record, no complete answer
                    log.error("audit record for %s not stored: %s", ctx.request_id, e)
                    raise GatewayError(503, "The audit trail is unavailable; the answer was withheld.") from None
                ctx.extra["audit_stored"] = True
            elif isinstance(ev, Delta):
                parts.append(ev.text)
            yield ev

    async def on_finish(self, ctx: RequestContext) -> None:
        if not ctx.extra.get("audit_stored"):
            self._start()
            try:
                self.writer.submit(self._entry(ctx, None, ""))  # not awaited: no complete answer depends on it
            except OSError as e:
                log.error("audit record for %s not journaled: %s", ctx.request_id, e)
        metrics.observe(ctx, ctx.extra.get("audit") or {})
