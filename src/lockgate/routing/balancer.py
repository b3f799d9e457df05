"""Deployments of a catalog model and the choice among them: by weight, away from in-flight load, never past
a deployment's concurrency limit, never to a withdrawn one or through an open breaker."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from lockgate.config import Upstream
from lockgate.providers import Provider
from lockgate.routing.breaker import Breaker


def deployment_key(up: Upstream) -> str:
    """Stable name of a deployment across replicas (the store row's key)."""
    return f"{up.provider}:{up.model}" + (f"@{up.base_url}" if up.base_url else "")


@dataclass(eq=False)
class Deployment:
    model: str  # catalog name
    upstream: Upstream
    provider: Provider
    breaker: Breaker
    key: str

    @property
    def label(self) -> str:
        return self.provider.label

    def full(self) -> bool:
        return self.provider.inflight >= self.upstream.max_concurrency


class Lease:
    """One in-flight slot on a provider, released exactly once however the call ends."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        dep.provider.inflight += 1
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.dep.provider.inflight -= 1


class Balancer:
    def __init__(self, gateway, failures: int, cooldown: float) -> None:
        breakers: dict[str, Breaker] = {}  # shared providers share a breaker: it is the same upstream
        self.by_model: dict[str, list[Deployment]] = {}
        for m in gateway.config.models:
            deps = []
            for up, prov in zip(m.deployments, gateway.providers_for(m.name)):
                key = deployment_key(up)
                br = breakers.setdefault(key, Breaker(failures, cooldown))
                deps.append(Deployment(m.name, up, prov, br, key))
            self.by_model[m.name] = deps
        self.withdrawn: dict[tuple[str, str], dict] = {}

    def is_withdrawn(self, dep: Deployment) -> bool:
        return (dep.model, dep.key) in self.withdrawn

    def model_withdrawn(self, model: str) -> bool:
        return all(self.is_withdrawn(d) for d in self.by_model[model])

    def pick(self, model: str, exclude: set[str]) -> tuple[Deployment | None, str]:
        """A deployment to call, or None and why not: withdrawn | open | hold | capacity | exhausted."""
        now = time.monotonic()
        live = [d for d in self.by_model[model] if not self.is_withdrawn(d)]
        if not live:
            return None, "withdrawn"
        fresh = [d for d in live if d.key not in exclude]
        if not fresh:
            return None, "exhausted"
        closed = [d for d in fresh if d.breaker.available(now)]
        if not closed:
            return None, "hold" if all(now < d.breaker.hold_until for d in fresh) else "open"
        free = [d for d in closed if not d.full()]
        if not free:
            return None, "capacity"
        # Weighted random, each weight divided by 1 + in-flight calls: the weights hold when idle,
        # and a loaded deployment sheds new calls to its idle peers.
        weights = [max(d.upstream.weight, 1e-6) / (1 + d.provider.inflight) for d in free]
        dep = random.choices(free, weights)[0]
        dep.breaker.begin(now)
        return dep, ""
