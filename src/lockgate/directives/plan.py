"""`directive plan`: who would lose or change access, before anything is applied.

Decisions depend only on a principal's derived attributes, so principals are grouped by those and each
group is evaluated once: 100k principals cost as many evaluations as there are distinct groups.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import orjson
from sqlalchemy import select

from lockgate.directives import cedar
from lockgate.directives.engine import Decision, Engine
from lockgate.directives.model import Directive
from lockgate.directives.store import State, load_state
from lockgate.identity.attributes import Requirements, conclusions
from lockgate.store import Store
from lockgate.store.models import Principal


@dataclass
class Plan:
    directive: Directive
    principals: int = 0
    groups: int = 0
    changed: Counter = field(default_factory=Counter)  # "model: before -> after" -> principals
    by_citizenship: Counter = field(default_factory=Counter)
    by_org: Counter = field(default_factory=Counter)
    by_model: Counter = field(default_factory=Counter)
    replayed: int = 0
    replay_changed: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"directive": self.directive.id, "principals": self.principals, "groups": self.groups,
                "affected_principals": len(self._affected),
                "changes": dict(self.changed), "by_citizenship": dict(self.by_citizenship),
                "by_org": dict(self.by_org), "by_model": dict(self.by_model),
                "replayed_requests": self.replayed, "replay_changes": dict(self.replay_changed), "notes": self.notes}

    _affected: set = field(default_factory=set)


def _label(d: Decision) -> str:
    return {"allow": "allow", "deny": "deny"}.get(d.effect, f"reroute {d.model}")


def engines(store: Store, catalog: set[str], access_rules: list[Directive], new: Directive) -> tuple[Engine, Engine, State]:
    state = load_state(store)
    before = Engine(catalog, access_rules)
    before.load(state)
    after_state = State(state.version + 1, [d for d in state.applied if d.id != new.id] + [new],
                        state.ever_restricted | set(new.models))
    after = Engine(catalog, access_rules)
    cedar.compile_set(access_rules + after_state.applied)  # raises DirectiveError naming the culprit
    after.load(after_state)
    return before, after, state


def plan(store: Store, new: Directive, catalog: set[str], access_rules: list[Directive], req: Requirements,
         days: int = 7, progress: Callable[[int], None] | None = None, now: datetime | None = None) -> Plan:
    now = now or datetime.now(timezone.utc)
    before, after, _ = engines(store, catalog, access_rules, new)
    unknown = [m for m in new.models + ([new.fallback] if new.fallback else []) if m not in catalog]
    result = Plan(new)
    if unknown:
        result.notes.append(f"not in this gateway's catalog: {', '.join(unknown)}")
    if new.effective_from and new.effective_from > now:
        result.notes.append(f"takes effect at {new.effective_from.isoformat()}; evaluated as if in force")
        after.load(after.state, new.effective_from)
    if "context." in new.when:
        result.notes.append("the condition reads the request context; principals are evaluated with an unknown "
                            "country — see the replayed requests for real contexts")
    models = sorted(set(new.models) | {m for d in before.state.applied if d.id == new.id for m in d.models})
    ctx = {"country": "", "api": "openai"}
    used = sorted(set(before.used) | set(after.used))  # only these attributes can change a decision
    groups: dict[bytes, tuple[dict, list[tuple[str, str, list[str]]]]] = {}
    with store.session() as s:
        for pid, org, facts in s.execute(select(Principal.id, Principal.org, Principal.attributes)).yield_per(5000):
            attrs = conclusions(facts, org, req, now)
            view = {a: attrs[a] for a in used}
            key = orjson.dumps(view, option=orjson.OPT_SORT_KEYS)
            groups.setdefault(key, (view, []))[1].append((pid, org or "(none)", attrs["citizenships"]))
            result.principals += 1
            if progress and result.principals % 5000 == 0:
                progress(5000)
    result.groups = len(groups)
    for view, members in groups.values():
        for model in models:
            b = before.decide(view, model, ctx, now)
            a = after.decide(view, model, ctx, now)
            if _label(a) == _label(b):
                continue
            result.changed[f"{model}: {_label(b)} -> {_label(a)}"] += len(members)
            result.by_model[model] += len(members)
            for pid, org, cits in members:
                if pid in result._affected:
                    continue  # counted once, however many of its models change
                result._affected.add(pid)
                result.by_org[org] += 1
                for c in cits or ["(not established)"]:
                    result.by_citizenship[c] += 1
    _replay(store, result, before, after, req, now - timedelta(days=days), now)
    return result


def _replay(store: Store, result: Plan, before: Engine, after: Engine, req: Requirements, since: datetime,
            now: datetime) -> None:
    """Requests of the last N days from the audit trail, decided again under the new directive set."""
    try:
        from lockgate.audit.tables import AuditRecord
    except ImportError:  # pragma: no cover
        return
    with store.session() as s:
        records = [json.loads(b) for (b,) in s.execute(
            select(AuditRecord.body).where(AuditRecord.kind == "request", AuditRecord.at >= since))]
        ids = {r.get("principal") for r in records if r.get("principal")}
        principals = {pid: (org, facts) for pid, org, facts in s.execute(
            select(Principal.id, Principal.org, Principal.attributes).where(Principal.id.in_(ids)))} if ids else {}
    for rec in records:
        found = principals.get(rec.get("principal") or "")
        model = rec.get("model_requested") or rec.get("requested_model")
        if found is None or not model:
            continue
        attrs = conclusions(found[1], found[0], req, now)
        ctx = {"country": rec.get("country") or "", "api": rec.get("api") or "openai"}
        b, a = before.decide(attrs, model, ctx, now), after.decide(attrs, model, ctx, now)
        result.replayed += 1
        if _label(a) != _label(b):
            result.replay_changed[f"{model}: {_label(b)} -> {_label(a)}"] += 1
