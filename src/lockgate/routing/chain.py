"""Walking a fallback chain: each model's deployments in turn, every fallback re-admitted by the pipeline,
all within one deadline. Only outage and withdrawn move on; refusal and client go back to the caller."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, replace
from typing import AsyncIterator

from lockgate.chat import ChatRequest, Delta, Done, Event, Message
from lockgate.context import Hop, RequestContext
from lockgate.errors import GatewayError, UpstreamError
from lockgate.pipeline import Skip
from lockgate.routing.balancer import Deployment, Lease

CONTINUE = ("Your previous answer was cut off. Continue it exactly where it stopped, without repeating "
            "anything and without commenting on the interruption.")


@dataclass
class Served:
    model: str
    index: int  # position in the chain
    dep: Deployment
    first: Event
    events: AsyncIterator[Event]


async def _leased(lease: Lease, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    try:
        async for ev in events:
            yield ev
    finally:
        lease.release()
        await events.aclose()


async def attempt(dep: Deployment, req: ChatRequest, max_tokens: int, budget: float) -> tuple[Event, AsyncIterator]:
    """Calls one deployment and waits for its first event, within its own total timeout and the deadline."""
    lease = Lease(dep)
    events = _leased(lease, dep.provider.generate(req, default_max_tokens=max_tokens))
    limit = max(0.001, min(dep.upstream.timeout.total, budget))
    try:
        async with asyncio.timeout(limit):
            return await anext(events), events
    except BaseException as e:
        await events.aclose()
        lease.release()  # idempotent; covers a stream that never started
        if isinstance(e, TimeoutError):
            raise UpstreamError("outage", 504, f"upstream gave no answer within {limit:.2f}s") from None
        if isinstance(e, StopAsyncIteration):
            raise UpstreamError("outage", 502, "upstream ended without an answer") from None
        raise


def _summary(hops: list[Hop]) -> str:
    return "; ".join(f"{h.model} ({h.deployment}): {h.outcome}" + (f" - {h.detail[:120]}" if h.detail else "")
                     for h in hops)


async def walk(router, ctx: RequestContext, req: ChatRequest, chain: list[str], *, admit_first: bool,
               deadline: float, label: str | None = None) -> Served:
    """The first model in `chain` that answers. Raises the caller-facing GatewayError otherwise."""
    s = router.settings
    first_hop = len(ctx.hops)
    reason: str | None = None
    retry_after: float | None = None
    for i, model in enumerate(chain):
        if i > 0 or admit_first:
            try:
                await router.gw.pipeline.admit(ctx, model)
            except Skip as e:
                ctx.hops.append(Hop(model, "-", f"skipped:{e}"))
                continue
            except GatewayError as e:  # e.g. a policy that cannot be confirmed: fail closed, never serve
                ctx.hops.append(Hop(model, "-", f"skipped:{e.code or e.status}", e.message))
                continue
        entry = router.gw.catalog[model]
        exclude: set[str] = set()
        retries = s.retries
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                ctx.hops.append(Hop(model, "-", "outage", f"deadline of {s.deadline:g}s exceeded"))
                reason = reason or "outage"
                break
            dep, why = router.balancer.pick(model, exclude)
            if dep is None:
                if why == "exhausted":
                    break
                detail = {"withdrawn": "marked withdrawn by its upstream", "open": "circuit breaker open",
                          "hold": "waiting out the upstream's Retry-After",
                          "capacity": "every deployment at its concurrency limit"}[why]
                ctx.hops.append(Hop(model, "-", why if why in ("withdrawn", "capacity") else "outage", detail))
                if why == "capacity":
                    retry_after = min(retry_after or s.capacity_retry_after, s.capacity_retry_after)
                    if i == 0 and not s.spill_on_capacity:
                        raise GatewayError(429, f"Every deployment of {model!r} is at its concurrency limit; "
                                                f"retry after {s.capacity_retry_after:g}s.", code="capacity",
                                           headers={"retry-after": _secs(s.capacity_retry_after)})
                reason = reason or ("withdrawn" if why == "withdrawn" else why if why == "capacity" else "outage")
                break
            exclude.add(dep.key)
            try:
                first, events = await attempt(dep, req, entry.default_max_tokens, left)
            except UpstreamError as e:
                ctx.hops.append(Hop(model, dep.label, e.kind, e.message))
                if e.kind in ("refusal", "client"):
                    dep.breaker.success()  # it answered: healthy, and the answer stands
                    raise
                router.failed(dep, e)
                reason = reason or e.kind
                if e.retry_after:
                    retry_after = min(retry_after or e.retry_after, e.retry_after)
                # A 5xx may land on a healthy worker next time; refused connections, timeouts and 429s
                # would just cost the same again, so those move on at once.
                if e.kind == "outage" and (e.upstream_status or 0) >= 500 and retries > 0:
                    retries -= 1
                    exclude.discard(dep.key)
                    pause = s.retry_backoff * random.uniform(0.5, 1.5)
                    await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                continue
            except GatewayError as e:  # the request cannot go to this model (e.g. untranslatable)
                dep.breaker.release()
                ctx.hops.append(Hop(model, dep.label, "client", e.message))
                if i == 0 and not admit_first:
                    raise
                break
            except BaseException:
                dep.breaker.release()
                raise
            dep.breaker.success()
            ctx.hops.append(Hop(model, dep.label, "served"))
            ctx.model = model
            if i > 0 or admit_first:
                ctx.fallback_reason = ctx.fallback_reason or reason or "outage"
                router.count("failover")
            return Served(model, i, dep, first, events)
    router.count("exhausted")
    tried = _summary(ctx.hops[first_hop:]) or "nothing"
    raise GatewayError(503, f"No upstream could serve {label or repr(chain[0])}. Tried: {tried}.",
                       code="upstream_unavailable",
                       headers={"retry-after": _secs(retry_after or 1)})


def _secs(x: float) -> str:
    return str(max(1, int(x + 0.999)))


def continuation(req: ChatRequest, partial: str) -> ChatRequest:
    """The request a fallback gets to carry on an answer cut mid-stream: the partial answer as an assistant
    turn, then an instruction to continue it."""
    msgs = list(req.messages) + [Message("assistant", partial), Message("user", CONTINUE)]
    return replace(req, messages=msgs)


def announcement(ctx: RequestContext, old: str, new: str, reason: str) -> Delta:
    """The in-stream notice that the answer now comes from another model (see docs/upstreams.md)."""
    info = {"event": "resumed", "from": old, "model": new, "reason": reason}
    if ctx.req.api == "anthropic":
        return Delta("", raw={"type": "ping", "lockgate": info})  # SDKs skip pings; raw readers see it
    return Delta("", raw={"id": "chatcmpl-" + ctx.request_id.removeprefix("req_"), "object": "chat.completion.chunk",
                          "created": int(ctx.wall_time), "model": new,
                          "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": None}],
                          "lockgate": info})


async def follow(router, ctx: RequestContext, chain: list[str], s: Served, resume: bool) -> AsyncIterator[Event]:
    """The served stream. A stream never ends cut: it ends with Done, an error, or a resumed answer."""
    req, sent = ctx.req, []
    while True:
        try:
            done, ev = False, s.first
            while True:
                if isinstance(ev, Delta):
                    sent.append(ev.text)
                done = done or isinstance(ev, Done)
                yield ev
                try:
                    ev = await anext(s.events)
                except StopAsyncIteration:
                    break
            if not done:
                raise UpstreamError("outage", 502, "upstream stream ended without completing")
            return
        except UpstreamError as e:
            ctx.hops.append(Hop(s.model, s.dep.label, e.kind, "after first byte: " + e.message))
            router.failed(s.dep, e)
            await s.events.aclose()
            rest = chain[s.index + 1:]
            if not (resume and rest and req.stream and not req.passthrough_reason
                    and e.kind in ("outage", "withdrawn")):
                raise
            req = continuation(ctx.req, "".join(sent))
            try:
                nxt = await walk(router, ctx, req, rest, admit_first=True, label=repr(chain[0]),
                                 deadline=time.monotonic() + router.settings.deadline)
            except GatewayError as e2:
                raise UpstreamError(e.kind, e.status, f"{e.message}; resuming failed: {e2.message}") from None
            ctx.fallback_reason = ctx.fallback_reason or e.kind
            router.count("resumed")
            yield announcement(ctx, s.model, nxt.model, e.kind)
            s = nxt
