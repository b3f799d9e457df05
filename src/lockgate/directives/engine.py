"""Decisions: allow, reroute(model) or deny, with the directives that fired. Cached per
(principal, model, context) and thrown away whenever the policy version or an effective window moves."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from lockgate.directives import cedar
from lockgate.directives.model import Directive
from lockgate.directives.store import State


@dataclass(frozen=True, slots=True)
class Decision:
    effect: str  # allow | reroute | deny
    model: str  # the model that serves (the asked-for one when allowed; None-like "" when denied)
    directives: tuple[str, ...] = ()
    notice: str | None = None
    reason: str = ""


class Engine:
    def __init__(self, catalog: set[str], access_rules: list[Directive] | None = None) -> None:
        self.catalog = catalog
        self.access_rules = access_rules or []  # catalog rules from config: always in force
        self.version = -1
        self.state = State(0, [], frozenset())
        self.ever_restricted: frozenset[str] = frozenset(m for d in self.access_rules for m in d.models)
        self._lock = threading.Lock()
        self._cache: dict[tuple, Decision] = {}
        self._entities: dict[str, object] = {}  # attribute digest -> parsed Cedar entity set
        self._reach: dict[str, list[str]] = {}
        self._boundary: datetime | None = None
        self.load(State(0, [], frozenset()))

    def load(self, state: State, now: datetime | None = None) -> None:
        """Installs a new policy version (compiling only the directives in force now)."""
        now = now or datetime.now(timezone.utc)
        rules = self.access_rules + [d for d in state.applied if d.active(now)]
        compiled = cedar.compile_set(rules)
        by_id = {d.id: d for d in self.access_rules + state.applied}
        edges = [t for d in state.applied for t in (d.effective_from, d.effective_until) if t and t > now]
        # Only the attributes some policy mentions can change a decision; projecting onto them lets everyone
        # who differs only in others share a cached decision (and lets `plan` evaluate a handful of groups).
        used = tuple(sorted(a for a in cedar.ATTRIBUTES if a in compiled.text))
        reach = _reachable(rules)
        with self._lock:
            self.state, self.version, self._compiled, self._by_id = state, state.version, compiled, by_id
            self._used = used
            self._reach = reach
            self.ever_restricted = frozenset(state.ever_restricted | {m for d in self.access_rules for m in d.models})
            self._boundary = min(edges) if edges else None
            self._cache = {}

    @property
    def used(self) -> tuple[str, ...]:
        """The attributes some policy in force mentions."""
        return self._used

    def forget(self) -> None:
        """Drops cached decisions and parsed entities (benchmarks; policy changes do this themselves)."""
        self._cache, self._entities = {}, {}

    def _tick(self, now: datetime) -> None:
        if self._boundary is not None and now >= self._boundary:
            self.load(self.state, now)  # a directive started or ended: recompile, drop the cache

    def decide(self, attrs: dict, model: str, context: dict, now: datetime | None = None) -> Decision:
        """Decisions depend on attributes, not identity: everyone with equal attributes shares one."""
        self._tick(now or datetime.now(timezone.utc))
        attrs = {a: attrs[a] for a in self._used}
        digest = _digest(attrs)
        key = (digest, model, context.get("country", ""), context.get("api", ""))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        ents = self._entities.get(digest)
        if ents is None:
            if len(self._entities) > 50_000:
                self._entities = {}
            ents = self._entities[digest] = cedar.entities(attrs)
        decision = self._evaluate(ents, model, context)
        if len(self._cache) > 200_000:
            self._cache = {}
        self._cache[key] = decision
        return decision

    def _evaluate(self, ents, model: str, context: dict) -> Decision:
        compiled, by_id = self._compiled, self._by_id
        # The model and every re-route target a rule could send it to, decided in one call.
        results = cedar.authorize(compiled, ents, self._reach.get(model, [model]), context)
        visited, fired_all, notice, current = [model], [], None, model
        while True:
            if current not in results:
                results.update(cedar.authorize(compiled, ents, [current], context))
            allowed, fired, errors = results[current]
            if errors:  # a directive that fails to evaluate denies
                return Decision("deny", "", tuple(fired_all), notice, f"policy evaluation failed: {errors[0]}")
            if allowed:
                effect = "allow" if current == model else "reroute"
                return Decision(effect, current, tuple(fired_all), notice, "")
            fired_all += [f for f in fired if f not in fired_all]
            rules = [by_id[f] for f in fired]
            notice = notice or next((r.notice for r in rules if r.notice), None)
            denying = next((r for r in rules if r.effect == "deny"), None)
            if denying is not None:
                return Decision("deny", "", tuple(fired_all), denying.notice or notice, f"denied by {denying.id}")
            target = rules[0].fallback
            if target in visited or target not in self.catalog:
                why = "loops back" if target in visited else "is not in the catalog"
                return Decision("deny", "", tuple(fired_all), notice, f"re-route target {target} {why}")
            visited.append(target)
            current = target


def _reachable(rules: list[Directive]) -> dict[str, list[str]]:
    """model -> [model, then every fallback reachable through rules naming it], in search order."""
    out: dict[str, list[str]] = {}
    for start in {m for r in rules for m in r.models}:
        order, todo = [start], [start]
        while todo:
            m = todo.pop(0)
            for r in rules:
                if m in r.models and r.fallback and r.fallback not in order:
                    order.append(r.fallback)
                    todo.append(r.fallback)
        out[start] = order
    return out


def _digest(attrs: dict) -> str:
    return hashlib.blake2b(json.dumps(attrs, sort_keys=True).encode(), digest_size=12).hexdigest()


def access_rule(model: str, allow_when: str, effect: str, fallback: str | None, notice: str) -> Directive:
    """A catalog access rule (config `models[].access`) as a directive that is always in force."""
    return Directive(id=f"catalog:{model}", title=f"access rule of {model}", models=[model],
                     when=f"!({allow_when})", effect=effect, fallback=fallback, notice=notice)
