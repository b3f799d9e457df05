"""The request path, in order. Read this file to know what happens to every request.

    identity -> directives -> safeguards.input -> routing+upstream -> safeguards.output -> metering -> audit

A stage implements any of four hooks (see `Stage`):
  * `on_request(ctx)`   before the upstream call; may annotate ctx, raise GatewayError to end the
                        request, or return an event stream that answers it (skipping later on_request);
  * `on_stream(ctx, events)` wraps the answer's event stream (output safeguards, metering);
  * `on_finish(ctx)`    after the answer ended, however it ended (audit);
  * `admit(ctx, model)` may this request be served by `model`? Routing asks before every fallback hop,
                        so a failover never routes around a directive or a safeguard. Raise `Skip`.
"""

from __future__ import annotations

from typing import AsyncIterator, Protocol

from lockgate.chat import Done, Event
from lockgate.context import RequestContext
from lockgate.errors import GatewayError


class Skip(Exception):
    """Raised by `admit`: this model may not serve this request (the reason goes on the hop record)."""


class Stage(Protocol):
    name: str

    async def on_request(self, ctx: RequestContext) -> AsyncIterator[Event] | None: ...

    def on_stream(self, ctx: RequestContext, events: AsyncIterator[Event]) -> AsyncIterator[Event]: ...

    async def on_finish(self, ctx: RequestContext) -> None: ...

    async def admit(self, ctx: RequestContext, model: str) -> None: ...


class BaseStage:
    """Default no-op hooks, so a stage writes only the ones it needs."""

    name = "stage"

    async def on_request(self, ctx: RequestContext) -> AsyncIterator[Event] | None:
        return None

    def on_stream(self, ctx: RequestContext, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        return events

    async def on_finish(self, ctx: RequestContext) -> None:
        return None

    async def admit(self, ctx: RequestContext, model: str) -> None:
        return None


def build_stages(gateway) -> list[Stage]:
    """The ordered chain. Adding a capability means adding a stage here, not editing routes."""
    from lockgate.audit.stage import AuditStage
    from lockgate.directives.stage import DirectivesStage
    from lockgate.identity.stage import IdentityStage
    from lockgate.metering.stage import MeteringStage
    from lockgate.monitor.stage import MonitorStage
    from lockgate.routing.resolve import ResolveStage
    from lockgate.routing.stage import RoutingStage
    from lockgate.safeguards.stage import InputSafeguards, OutputSafeguards, Safeguards

    safety = Safeguards(gateway)  # one classifier and profile set for both safeguard stages
    return [
        IdentityStage(gateway),  # key or token -> principal with attested attributes
        MonitorStage(gateway),  # throttles from the jailbreak monitor; observes hits off the request path
        ResolveStage(gateway),  # the model asked for is in the catalog
        DirectivesStage(gateway),  # may this principal use it? allow, re-route or deny
        InputSafeguards(gateway, safety),  # is the prompt safe for this model's profile? refuse or re-route
        MeteringStage(gateway),  # budgets and rate limits: reserve the worst case, reconcile after
        RoutingStage(gateway),  # deployment -> provider call, with failover
        OutputSafeguards(gateway, safety),  # is the streamed answer still safe? halt it if not
        AuditStage(gateway),  # the signed, hash-chained record; durable before the answer completes
    ]


class Pipeline:
    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages
        self._finishers = [s for s in stages if type(s).on_finish is not BaseStage.on_finish]
        self._wrappers = [s for s in stages if type(s).on_stream is not BaseStage.on_stream]
        self._admitters = [s for s in stages if type(s).admit is not BaseStage.admit]

    def stage(self, name: str):
        return next((s for s in self.stages if s.name == name), None)

    async def admit(self, ctx: RequestContext, model: str) -> None:
        """Every rule that applies to `model`, re-checked for a fallback hop. Raises Skip."""
        for stage in self._admitters:
            await stage.admit(ctx, model)

    async def run(self, ctx: RequestContext) -> AsyncIterator[Event]:
        """Runs the request hooks; returns the (wrapped) answer stream. Raises GatewayError."""
        try:
            for stage in self.stages:
                answer = await stage.on_request(ctx)
                if answer is not None:
                    ctx.events = answer
                    break
            if ctx.events is None:
                raise GatewayError(503, "no stage produced an answer")
            events = ctx.events
            for stage in self._wrappers:
                events = stage.on_stream(ctx, events)
        except GatewayError as e:
            ctx.status, ctx.error = e.status, e.message
            await self.finish(ctx)
            raise
        return self._finishing(ctx, events)

    async def _finishing(self, ctx: RequestContext, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        try:
            async for ev in events:
                if isinstance(ev, Done):
                    ctx.usage, ctx.finish_reason = ev.usage, ev.finish_reason
                yield ev
        except GatewayError as e:
            ctx.status, ctx.error = e.status, e.message
            raise
        except BaseException as e:  # client gone (cancelled) or a bug: still recorded
            if ctx.error is None:
                ctx.status, ctx.error = 499 if isinstance(e, GeneratorExit) else 500, type(e).__name__
            raise
        finally:
            await self.finish(ctx)

    async def finish(self, ctx: RequestContext) -> None:
        for stage in self._finishers:
            await stage.on_finish(ctx)
