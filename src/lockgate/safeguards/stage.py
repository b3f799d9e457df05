"""Safeguard stages: classify the prompt before routing, and the answer as it streams.

A hit is never silent: a refusal is an ordinary answer with the API's content-filter stop reason and a
`lockgate-safeguard` header; a re-route names the safer model. A classifier that fails or times out
applies the profile's failure mode (refuse, for blocking profiles)."""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from anyio import to_thread
from pydantic import BaseModel, ConfigDict, Field

from lockgate.audit import metrics
from lockgate.chat import Delta, Done, Event, Usage
from lockgate.context import RequestContext
from lockgate.pipeline import BaseStage, Skip
from lockgate.safeguards import Classifier, Profile, StreamMonitor, default_profiles, spelling

log = logging.getLogger("lockgate.safeguards")
REFUSAL = "I can't help with that. This request was stopped by a {domain} safeguard of this gateway."
WITHHELD = "\n\n[The rest of this answer was withheld by a {domain} safeguard of this gateway.]"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profiles: dict[str, dict] = Field(default_factory=dict)  # added to / overriding `strict` and `defender`
    timeout_ms: int = 2000
    stream_every_tokens: int = 32


def _refusal(domain: str | None) -> AsyncIterator[Event]:
    async def gen():
        yield Delta(REFUSAL.format(domain=domain or "safety"))
        yield Done("content_filter", Usage())

    return gen()


class Safeguards:
    """What both stages share: the classifier, the profiles, and which profile applies."""

    def __init__(self, gateway) -> None:
        self.gw = gateway
        self.settings = Settings.model_validate(gateway.config.safeguards)
        self.profiles: dict[str, Profile] = default_profiles()
        for name, spec in self.settings.profiles.items():
            self.profiles[name] = Profile.model_validate({"name": name, **spec})
        for m in gateway.config.models:
            for name in [m.safeguards, *m.safeguards_by_program.values()]:
                if name and name not in self.profiles:
                    raise ValueError(f"model {m.name}: unknown safeguard profile {name!r}")
        self.enabled = any(m.safeguards or m.safeguards_by_program for m in gateway.config.models)
        self.classifier = Classifier.load() if self.enabled else None
        if self.classifier is not None:
            metrics.watch_classifier(self.classifier)
        self.warm: asyncio.Future | None = None

    async def start(self) -> None:
        """Loads the classifier's heavier parts off the request path; /readyz waits for it."""
        if self.classifier is not None:
            # A suspicious-looking text, so the cascade's second stage (MiniLM) loads too.
            probe = "warm-up: how would someone break into a server and steal its passwords"

            def warm() -> None:
                spelling.warm()  # the typo-repair dictionary (~1 s)
                self.classifier.classify(probe)

            self.warm = asyncio.ensure_future(to_thread.run_sync(warm))
            await self.warm

    def ready(self) -> bool:
        return self.classifier is None or (self.warm is not None and self.warm.done())

    def profile(self, ctx: RequestContext, model: str) -> Profile | None:
        entry = self.gw.catalog[model]
        for program in ctx.attributes.get("programs", []):
            if program in entry.safeguards_by_program:
                return self.profiles[entry.safeguards_by_program[program]]
        return self.profiles[entry.safeguards] if entry.safeguards else None

    async def verdict(self, ctx: RequestContext):
        """The prompt's verdict, computed once per request (fallback hops reuse it)."""
        if "safety_verdict" not in ctx.extra:
            if self.warm is not None and not self.warm.done():
                await asyncio.wait_for(asyncio.shield(self.warm), 120)  # first requests wait for the load
            msgs = [{"role": m.role, "content": m.content} for m in ctx.req.messages]
            call = to_thread.run_sync(self.classifier.classify_conversation, msgs)
            ctx.extra["safety_verdict"] = await asyncio.wait_for(call, self.settings.timeout_ms / 1000)
            metrics.observe_verdict("input", ctx.extra["safety_verdict"])
        return ctx.extra["safety_verdict"]

    async def decide(self, ctx: RequestContext, profile: Profile):
        try:
            return profile.decide(await self.verdict(ctx))
        except Exception as e:  # crash or timeout: the profile's failure mode, never a silent pass
            log.error("input classifier failed: %s", repr(e))
            return profile.decide_error(e)


def _observe(mon: StreamMonitor, before) -> None:
    if mon.last_verdict is not before:  # a check ran and gave a verdict (a crashed one gives none)
        metrics.observe_verdict("output", mon.last_verdict)


def record(ctx: RequestContext, stage: str, d, profile: Profile) -> None:
    ctx.safeguards.append({"stage": stage, "domain": d.domain, "score": round(d.score, 4), "action": d.action,
                           "model": d.model, "profile": profile.name})


class InputSafeguards(BaseStage):
    name = "safeguards.input"

    def __init__(self, gateway, shared: Safeguards) -> None:
        self.gw, self.s = gateway, shared

    async def start(self) -> None:
        await self.s.start()

    def ready(self) -> bool:
        return self.s.ready()

    async def on_request(self, ctx: RequestContext):
        profile = self.s.profile(ctx, ctx.model)
        if profile is None:
            return None
        d = await self.s.decide(ctx, profile)
        if d.action == "allow":
            return None
        record(ctx, "input", d, profile)
        if d.action == "monitor":
            return None
        if d.action == "reroute" and d.model:
            try:  # the safer model must itself be allowed: directives and its own profile
                await self.gw.pipeline.admit(ctx, d.model)
                ctx.model = d.model
                return None
            except Skip as e:
                log.info("safeguard re-route to %s not admitted (%s): refusing", d.model, e)
        ctx.finish_reason = "content_filter"
        return _refusal(d.domain)

    async def admit(self, ctx: RequestContext, model: str) -> None:
        profile = self.s.profile(ctx, model)
        if profile is None:
            return
        d = await self.s.decide(ctx, profile)
        if d.blocking:
            raise Skip(f"safeguard {d.domain or 'error'}: {d.action}")


class OutputSafeguards(BaseStage):
    name = "safeguards.output"

    def __init__(self, gateway, shared: Safeguards) -> None:
        self.gw, self.s = gateway, shared

    def on_stream(self, ctx: RequestContext, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        if ctx.finish_reason == "content_filter":
            return events  # already a refusal
        profile = self.s.profile(ctx, ctx.model)
        if profile is None:
            return events
        return self._watch(ctx, events, profile)

    async def _watch(self, ctx: RequestContext, events: AsyncIterator[Event], profile: Profile):
        """Holds text back until it has been judged, so a hit stops the answer before the harmful part."""
        mon = StreamMonitor(self.s.classifier, profile, every_tokens=self.s.settings.stream_every_tokens)
        held: list[Delta] = []
        async for ev in events:
            if isinstance(ev, Delta):
                held.append(ev)
                checks, last = mon.checks, mon.last_verdict
                d = await to_thread.run_sync(mon.feed, ev.text)
                _observe(mon, last)
                if d is not None:
                    async for h in self._halt(ctx, d, profile, events, mon):
                        yield h
                    return
                if mon.checks != checks:  # judged and passed: release what was held
                    for h in held:
                        yield h
                    held = []
            else:
                last = mon.last_verdict
                d = await to_thread.run_sync(mon.finish)
                _observe(mon, last)
                if d is not None:
                    async for h in self._halt(ctx, d, profile, events, mon, ev.usage):
                        yield h
                    return
                for h in held:
                    yield h
                for e in mon.events[-1:]:
                    record(ctx, "output", e, profile)
                yield ev

    async def _halt(self, ctx, d, profile, events, mon, usage: Usage | None = None):
        """Ends the answer: a closing note and the content-filter stop reason. Mid-answer there is no clean
        way to switch models, so a re-route decision halts like a refusal."""
        record(ctx, "output", d, profile)
        await events.aclose()  # stop the upstream generating
        yield Delta(WITHHELD.format(domain=d.domain or "safety"))
        out = usage.output_tokens if usage else int(len(mon.text) / 4)
        yield Done("content_filter", Usage(usage.input_tokens if usage else 0, out))
