"""What goes into a chained record: every decision on the request, never its content."""

from __future__ import annotations

import getpass
import os
import time
from datetime import datetime, timezone

from lockgate.audit.chain import iso

VERSION = 1


def _citizenships(principal) -> list[str]:
    attrs = getattr(principal, "attributes", None) or {}
    c = attrs.get("citizenships")
    value = c.get("value") if isinstance(c, dict) else c
    return sorted(str(v) for v in value) if isinstance(value, (list, tuple)) else []


def request_body(ctx, usage=None, content_hash: str | None = None) -> dict:
    """The record for one request. `usage` is the final Done's (ctx.usage is set only after it)."""
    meter = ctx.extra.get("metering") or {}
    usage = usage or ctx.usage
    p = ctx.principal
    return {
        "v": VERSION,
        "type": "request",
        "at": iso(datetime.fromtimestamp(ctx.wall_time, timezone.utc)),
        "request_id": ctx.request_id,
        "principal": getattr(p, "id", None),
        "org": getattr(p, "org", None),
        "citizenships": _citizenships(p),
        "key_id": ctx.key_id,
        "api": getattr(ctx.req, "api", None),
        "model_requested": ctx.requested_model or getattr(ctx.req, "model", None),
        "model_served": ctx.model or None,
        "directives": list(ctx.directives),
        "notice": ctx.notice,
        "safeguards": [{k: s.get(k) for k in ("stage", "domain", "score", "action", "model") if k in s}
                       for s in ctx.safeguards],
        "hops": [{"model": h.model, "deployment": h.deployment, "outcome": h.outcome, "detail": h.detail[:200]}
                 for h in ctx.hops],
        "fallback_reason": ctx.fallback_reason,
        "status": ctx.status,
        "error": ctx.error,
        "finish_reason": ctx.finish_reason,
        "tokens_in": meter.get("tokens_in", usage.input_tokens),
        "tokens_out": meter.get("tokens_out", usage.output_tokens),
        "tokens_estimated": bool(meter.get("estimated", False)),
        "cost_micro_usd": meter.get("cost_micro", 0),
        "latency_ms": round((time.perf_counter() - ctx.started) * 1000, 3),
        "country": ctx.extra.get("country"),
        "policy_version": ctx.extra.get("policy_version"),
        "content_sha256": content_hash,
    }


def default_actor() -> str:
    actor = os.environ.get("LOCKGATE_ACTOR")
    if actor:
        return actor
    try:
        return "local:" + getpass.getuser()
    except Exception:  # no user name in a container
        return f"local:uid{os.getuid()}"


def admin_body(actor: str | None, action: str, target: str, details: dict | None, now: datetime) -> dict:
    return {"v": VERSION, "type": "admin", "at": iso(now), "actor": actor or default_actor(), "action": action,
            "target": target, "details": details or {}}
