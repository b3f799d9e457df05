"""Routing stage: pick a deployment of ctx.model and call it.

The first event is awaited here, before any byte goes to the client, so a failure up to that point
still gets a proper HTTP status (and, with #5, a failover).
"""

from __future__ import annotations

from typing import AsyncIterator

from lockgate.chat import Event
from lockgate.context import Hop, RequestContext
from lockgate.errors import UpstreamError
from lockgate.pipeline import BaseStage


async def _prepend(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    yield first
    async for ev in rest:
        yield ev


class RoutingStage(BaseStage):
    name = "routing"

    def __init__(self, gateway) -> None:
        self.gw = gateway

    async def on_request(self, ctx: RequestContext) -> AsyncIterator[Event]:
        entry = self.gw.catalog[ctx.model]
        provider = self.gw.providers_for(entry.name)[0]
        events = provider.generate(ctx.req, default_max_tokens=entry.default_max_tokens)
        try:
            first = await anext(events)
        except UpstreamError as e:
            ctx.hops.append(Hop(entry.name, provider.label, e.kind, e.message))
            await events.aclose()
            raise
        ctx.hops.append(Hop(entry.name, provider.label, "served"))
        return _prepend(first, events)
