"""MeteringStage (just before routing): budgets and rate limits, usage and cost.

on_request reserves the worst case (input bound + max_tokens, at the highest price among the model
and its fallbacks) on every limit that applies; the answer's Done gives the real usage and cost at
the served model's price; on_finish turns the reservation into that amount, whatever happened.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timezone
from typing import AsyncIterator, Callable

from anyio import to_thread

from lockgate.chat import Delta, Done, Event
from lockgate.context import RequestContext
from lockgate.errors import GatewayError
from lockgate.metering import budgets
from lockgate.metering.settings import MeteringSettings
from lockgate.metering.usage import Rollup, today
from lockgate.pipeline import BaseStage

log = logging.getLogger("lockgate.metering")


def input_bound(req) -> int:
    # A BPE token covers at least one byte; plus a few framing tokens per message.
    return len(req.text().encode()) + 8 * (len(req.messages) + 1) + 16


def cost_micro(price, tokens_in: int, tokens_out: int) -> int:
    # Prices are USD per million tokens, i.e. micro-USD per token.
    return math.ceil(tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok)


class MeteringStage(BaseStage):
    name = "metering"

    def __init__(self, gateway, clock: Callable[[], datetime] | None = None) -> None:
        self.gw = gateway
        self.settings = MeteringSettings.of(gateway.config)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.rollup = Rollup()
        self._limits: dict[tuple[str, str], list[budgets.Limit]] | None = None
        self._flusher: asyncio.Task | None = None
        gateway.on_revision(self._forget)

    def _forget(self) -> None:
        self._limits = None

    async def _applicable(self, ctx: RequestContext) -> list[budgets.Limit]:
        if self._limits is None:
            by: dict[tuple[str, str], list[budgets.Limit]] = {}
            for lim in await to_thread.run_sync(budgets.list_limits, self.gw.store):
                by.setdefault((lim.scope, lim.scope_id), []).append(lim)
            self._limits = by
        p = ctx.principal
        ids = (("key", ctx.key_id), ("principal", getattr(p, "id", None)), ("org", getattr(p, "org", None)))
        return [lim for scope, i in ids if i for lim in self._limits.get((scope, i), [])]

    def _worst_case(self, ctx: RequestContext) -> dict[str, int]:
        entry = self.gw.catalog[ctx.model]
        prices = [entry.price] + [self.gw.catalog[f].price for f in entry.fallbacks if f in self.gw.catalog]
        tin, tout = input_bound(ctx.req), ctx.req.max_tokens or entry.default_max_tokens
        usd = max(math.ceil(tin * p.input_per_mtok + tout * p.output_per_mtok) for p in prices)
        return {"usd": usd, "tokens": tin + tout, "requests": 1}

    async def on_request(self, ctx: RequestContext):
        self._start()
        limits = await self._applicable(ctx)
        if not limits or ctx.model not in self.gw.catalog:
            return None
        try:
            held = await to_thread.run_sync(budgets.reserve, self.gw.store, limits, self._worst_case(ctx), self.clock())
        except budgets.OverLimit as e:
            lim = e.limit
            kind = "budget" if lim.metric == "usd" else "rate limit"
            headers = {"retry-after": str(60 - self.clock().second)} if lim.period == "minute" else {}
            raise GatewayError(429, f"Over the {kind} for {lim.describe()}.", headers=headers,
                               code="budget_exceeded" if lim.metric == "usd" else "rate_limit_exceeded") from None
        ctx.extra["metering_held"] = held
        return None

    def on_stream(self, ctx: RequestContext, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        return self._count(ctx, events)

    async def _count(self, ctx: RequestContext, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        chars = 0
        async for ev in events:
            if isinstance(ev, Delta):
                chars += len(ev.text)
            elif isinstance(ev, Done):
                u, estimated = ev.usage, not (ev.usage.input_tokens or ev.usage.output_tokens)
                cpt = self.settings.chars_per_token
                tin = math.ceil(len(ctx.req.text()) / cpt) if estimated else u.input_tokens
                tout = math.ceil(chars / cpt) if estimated else u.output_tokens
                entry = self.gw.catalog.get(ctx.model)
                cost = cost_micro(entry.price, tin, tout) if entry else 0
                ctx.extra["metering"] = {"tokens_in": tin, "tokens_out": tout, "estimated": estimated,
                                         "cost_micro": cost}
            yield ev

    async def on_finish(self, ctx: RequestContext) -> None:
        m = ctx.extra.get("metering") or {}
        held = ctx.extra.pop("metering_held", None)
        if held:
            actual = {"usd": m.get("cost_micro", 0), "tokens": m.get("tokens_in", 0) + m.get("tokens_out", 0),
                      "requests": 1}
            try:
                await to_thread.run_sync(budgets.reconcile, self.gw.store, held, actual)
            except Exception as e:  # the reservation stays held (errs on the safe side); later stages still run
                log.error("reconciling %s failed: %s", ctx.request_id, e)
        if m and ctx.principal is not None:
            p = ctx.principal
            self.rollup.add(today(self.clock()), p.org or "", p.id, ctx.key_id or "", ctx.model,
                            m["tokens_in"], m["tokens_out"], m["cost_micro"])

    def _start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop())
            getattr(self.gw, "_tasks", []).append(self._flusher)  # cancelled by Gateway.stop()

    async def _flush_loop(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.settings.flush_seconds)
                try:
                    await to_thread.run_sync(self.rollup.flush, self.gw.store)
                except Exception:  # store outage: sums are kept for the next try
                    pass
        finally:
            try:
                self.rollup.flush(self.gw.store)
            except Exception:
                pass
