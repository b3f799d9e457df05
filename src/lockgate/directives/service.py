"""What the CLI and the admin API share: load the catalog context, then plan / apply / revoke."""

from __future__ import annotations

from lockgate.config import Config
from lockgate.directives import plan as planner
from lockgate.directives import store as dstore
from lockgate.directives.engine import access_rule
from lockgate.directives.model import Directive, DirectiveError
from lockgate.identity.attributes import Requirements
from lockgate.store import Store


def catalog_context(conf: Config) -> tuple[set[str], list[Directive], Requirements]:
    rules = [access_rule(m.name, m.access.allow_when, m.access.effect, m.access.fallback, m.access.notice)
             for m in conf.models if m.access]
    return {m.name for m in conf.models}, rules, Requirements.model_validate(conf.identity)


def plan(store: Store, conf: Config, d: Directive, days: int = 7, progress=None) -> planner.Plan:
    catalog, rules, req = catalog_context(conf)
    return planner.plan(store, d, catalog, rules, req, days=days, progress=progress)


def apply(store: Store, conf: Config, d: Directive, by: str) -> dstore.DirectiveVersion:
    catalog, rules, _ = catalog_context(conf)
    planner.engines(store, catalog, rules, d)  # validates against the schema and the set in force
    if d.fallback and d.fallback not in catalog:
        raise DirectiveError(f"directive {d.id}: fallback {d.fallback!r} is not in the catalog")
    row = dstore.apply(store, d, by)
    _audit(store, by, "directive.apply", d.id, {"version": row.seq, "digest": row.digest, "hash": row.hash})
    return row


def revoke(store: Store, directive_id: str, by: str) -> dstore.DirectiveVersion:
    row = dstore.revoke(store, directive_id, by)
    _audit(store, by, "directive.revoke", directive_id, {"version": row.seq, "hash": row.hash})
    return row


def _audit(store: Store, actor: str, action: str, target: str, details: dict) -> None:
    try:
        from lockgate.audit import record_admin
    except ImportError:  # pragma: no cover - audit package absent
        return
    record_admin(store, actor, action, target, details)
