"""Decisions: allow, reroute(model) or deny, with the directives that fired. Cached per (projection of the
principal's attributes and of the context onto what the policies read, model) within a policy version, and
thrown away whenever the policy version or an effective window moves."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

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


class _Version:
    """One policy version, everything a decision needs from it, and the decisions taken under it."""

    __slots__ = ("version", "compiled", "rules", "used", "reach", "cache")

    def __init__(self, version: int, compiled: cedar.Compiled, by_id: dict[str, Directive],
                 reach: dict[str, tuple[str, ...]]) -> None:
        self.version, self.compiled, self.reach = version, compiled, reach
        # directive id -> (effect, fallback, notice): what a decision reads of a rule that fired
        self.rules = {i: (d.effect, d.fallback, d.notice) for i, d in by_id.items()}
        self.used = compiled.used
        self.cache: dict[tuple, Decision] = {}


class Engine:
    def __init__(self, catalog: set[str], access_rules: list[Directive] | None = None) -> None:
        self.catalog = catalog
        self.access_rules = access_rules or []  # catalog rules from config: always in force
        self.version = -1
        self.state = State(0, [], frozenset())
        self.ever_restricted: frozenset[str] = frozenset(m for d in self.access_rules for m in d.models)
        self._lock = threading.Lock()
        self._boundary: datetime | None = None
        self.load(State(0, [], frozenset()))

    def load(self, state: State, now: datetime | None = None) -> None:
        """Installs a new policy version (compiling only the directives in force now)."""
        now = now or datetime.now(timezone.utc)
        rules = self.access_rules + [d for d in state.applied if d.active(now)]
        compiled = cedar.compile_set(rules)
        by_id = {d.id: d for d in self.access_rules + state.applied}
        edges = [t for d in state.applied for t in (d.effective_from, d.effective_until) if t and t > now]
        # Only the attributes some policy mentions can change a decision (`compiled.used`); projecting onto
        # them lets everyone who differs only in others share a cached decision (and lets `plan` evaluate a
        # handful of groups). The cache belongs to the version, so a new version starts with none.
        v = _Version(state.version, compiled, by_id, _reachable(rules))
        with self._lock:
            self.state, self.version, self._v = state, state.version, v
            self.ever_restricted = frozenset(state.ever_restricted | {m for d in self.access_rules for m in d.models})
            self._boundary = min(edges) if edges else None

    @property
    def used(self) -> tuple[str, ...]:
        """The attributes some policy in force mentions."""
        return self._v.used

    def forget(self) -> None:
        """Drops cached decisions (benchmarks; policy changes do this themselves)."""
        self._v.cache = {}

    def _tick(self, now: datetime) -> None:
        if self._boundary is not None and now >= self._boundary:
            self.load(self.state, now)  # a directive started or ended: recompile, drop the cache

    def decide(self, attrs: dict, model: str, context: dict, now: datetime | None = None) -> Decision:
        """Decisions depend on attributes, not identity: everyone with equal attributes shares one."""
        if self._boundary is not None:
            self._tick(now or datetime.now(timezone.utc))
        v = self._v  # one version throughout, even if another thread installs a newer one meanwhile
        try:  # the projection, as JSON: the cache key and (on a miss) the entity Cedar parses
            view = orjson.dumps({a: attrs[a] for a in v.used})
            ctx = cedar.context_json(v.compiled, context)
        except TypeError as e:  # not JSON: nothing can be evaluated, so deny (never cached)
            return Decision("deny", "", (), None, f"policy evaluation failed: {e}")
        key = (view, model, ctx)
        hit = v.cache.get(key)
        if hit is not None:
            return hit
        # A miss: Cedar parses the projected entity and evaluates the chain, in one native call.
        decision = self._evaluate(v, cedar.entities_json(view), model, ctx)
        if len(v.cache) > 200_000:
            v.cache = {}
        v.cache[key] = decision
        return decision

    def _evaluate(self, v: _Version, ents: str, model: str, ctx: str | None) -> Decision:
        compiled, rules = v.compiled, v.rules
        # The model and every re-route target a rule could send it to, decided in one call; an answer is
        # read only when the chain gets to it.
        raw = cedar.evaluate(compiled, ents, v.reach.get(model) or (model,), ctx)
        visited, fired_all, notice, current = [model], [], None, model
        while True:
            if current not in raw:
                raw.update(cedar.evaluate(compiled, ents, (current,), ctx))
            allowed, fired, errors = cedar.read(compiled, raw[current])
            if errors:  # a directive that fails to evaluate denies
                return Decision("deny", "", tuple(fired_all), notice, f"policy evaluation failed: {errors[0]}")
            if allowed:
                return Decision("allow" if current == model else "reroute", current, tuple(fired_all), notice, "")
            if not fired:  # denied, yet no directive forbade it: nothing to re-route by
                return Decision("deny", "", tuple(fired_all), notice, "denied by the policy set")
            target = denying = None
            for f in fired:  # in policy order (see cedar.read)
                if f not in fired_all:
                    fired_all.append(f)
                effect, fallback, rule_notice = rules[f]
                if notice is None and rule_notice:
                    notice = rule_notice
                if effect == "deny":
                    if denying is None:
                        denying = (f, rule_notice)
                elif target is None:
                    target = fallback
            if denying is not None:
                return Decision("deny", "", tuple(fired_all), denying[1] or notice, f"denied by {denying[0]}")
            if target in visited or target not in self.catalog:
                why = "loops back" if target in visited else "is not in the catalog"
                return Decision("deny", "", tuple(fired_all), notice, f"re-route target {target} {why}")
            visited.append(target)
            current = target


def _reachable(rules: list[Directive]) -> dict[str, tuple[str, ...]]:
    """model -> (model, then every fallback reachable through rules naming it), in search order."""
    out: dict[str, tuple[str, ...]] = {}
    for start in {m for r in rules for m in r.models}:
        order, todo = [start], [start]
        while todo:
            m = todo.pop(0)
            for r in rules:
                if m in r.models and r.fallback and r.fallback not in order:
                    order.append(r.fallback)
                    todo.append(r.fallback)
        out[start] = tuple(order)
    return out


def access_rule(model: str, allow_when: str, effect: str, fallback: str | None, notice: str) -> Directive:
    """A catalog access rule (config `models[].access`) as a directive that is always in force."""
    return Directive(id=f"catalog:{model}", title=f"access rule of {model}", models=[model],
                     when=f"!({allow_when})", effect=effect, fallback=fallback, notice=notice)
