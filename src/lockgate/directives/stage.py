"""Directives stage: allow, re-route or deny the requested model for this principal, per the directives
in force. Fails closed: a replica that cannot confirm its policy version denies restricted models."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

from anyio import to_thread
from pydantic import BaseModel, ConfigDict

from lockgate.context import RequestContext
from lockgate.directives import store as dstore
from lockgate.directives.engine import Decision, Engine, access_rule
from lockgate.errors import GatewayError
from lockgate.identity.geo import country
from lockgate.pipeline import BaseStage, Skip

log = logging.getLogger("lockgate.directives")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_seconds: float = 2.0  # older than this, restricted models are denied until we catch up


class DirectivesStage(BaseStage):
    name = "directives"

    def __init__(self, gateway) -> None:
        self.gw = gateway
        self.settings = Settings.model_validate(gateway.config.directives)
        rules = [access_rule(m.name, m.access.allow_when, m.access.effect, m.access.fallback, m.access.notice)
                 for m in gateway.config.models if m.access]
        self.engine = Engine(set(gateway.catalog), rules)
        self.engine.load(dstore.load_state(gateway.store))  # before the first request: never start open
        self._pending_since: float | None = None
        self._reload_task: asyncio.Task | None = None
        gateway.on_revision(self._on_revision)

    # -- keeping current -------------------------------------------------------------------------
    def _on_revision(self) -> None:
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> None:
        while self._pending_since is not None:
            started = time.monotonic()
            try:
                state = await to_thread.run_sync(dstore.load_state, self.gw.store)
                self.engine.load(state)
                if self._pending_since is not None and self._pending_since <= started:
                    self._pending_since = None
            except Exception as e:
                log.warning("directive reload failed (will retry): %s", e)
                await asyncio.sleep(0.2)

    def stale(self) -> bool:
        lease, now = self.settings.lease_seconds, time.monotonic()
        return now - self.gw.last_sync > lease or (
            self._pending_since is not None and now - self._pending_since > lease)

    # -- deciding --------------------------------------------------------------------------------
    def decide(self, ctx: RequestContext, model: str) -> Decision:
        if self.stale() and model in self.engine.ever_restricted:
            raise GatewayError(503, f"Model {model!r} is restricted by directives and this gateway cannot confirm "
                                    "its policy version is current; failing closed until it catches up.",
                               code="policy_stale", headers={"retry-after": "1"})
        if "country" not in ctx.extra:
            ctx.extra["country"] = country(ctx.client_ip) if ctx.client_ip else ""
        context = {"country": ctx.extra["country"], "api": ctx.req.api}
        return self.engine.decide(ctx.attributes, model, context, datetime.now(timezone.utc))

    async def on_request(self, ctx: RequestContext):
        d = self.decide(ctx, ctx.model)
        ctx.extra["policy_version"] = self.engine.version
        if d.effect == "allow":
            return None
        ctx.directives = list(d.directives)
        ctx.notice = d.notice
        if d.effect == "deny":
            raise GatewayError(403, d.notice or f"Access to {ctx.model!r} is denied by directive "
                                                f"{', '.join(d.directives)}.", code="directive_denied")
        ctx.model = d.model
        return None

    async def admit(self, ctx: RequestContext, model: str) -> None:
        d = self.decide(ctx, model)
        if d.effect != "allow":
            raise Skip(f"directive {','.join(d.directives) or d.reason}")
