"""Admin API for audit, content, usage, budgets, reports, admin keys, incidents and models — each behind a role."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from lockgate.admin import roles
from lockgate.admin.roles import Actor
from lockgate.admin.routes import _run, require, store
from lockgate.audit.tables import RECORDS
from lockgate.errors import GatewayError
from lockgate.identity import keys
from lockgate.routing import withdrawn

router = APIRouter(prefix="/admin/v1", tags=["operations"])


@router.get("/audit/verify")
async def audit_verify(request: Request, actor: Actor = require("audit.read")) -> dict:
    from lockgate.audit.verify import verify_store

    return asdict(await to_thread.run_sync(verify_store, store(request)))


@router.get("/audit/content/{request_id}")
async def read_content(request: Request, request_id: str, actor: Actor = require("content.read")) -> dict:
    """Decrypts a request's prompt and answer. Every read is itself an audit record."""
    from lockgate.audit import content, record_admin

    st = store(request)
    await to_thread.run_sync(record_admin, st, actor.id, "content.read", request_id, {"role": actor.role})
    found = await to_thread.run_sync(content.read, st, request_id)
    if found is None:
        raise GatewayError(404, f"No stored content for {request_id} (never kept, or purged after retention).")
    return {"request_id": request_id, "content": found}


@router.get("/usage")
async def usage(request: Request, by: str = "org,principal,model", since: str | None = None, until: str | None = None,
                actor: Actor = require("usage.read")) -> dict:
    from lockgate.metering.usage import GROUPS, BadDay, report

    groups = [g.strip() for g in by.split(",") if g.strip()]
    if bad := [g for g in groups if g not in GROUPS]:
        raise GatewayError(400, f"by: unknown {', '.join(bad)} (choose from {', '.join(GROUPS)})")
    try:
        rows = await to_thread.run_sync(report, store(request), groups, since, until)
    except BadDay as e:
        raise GatewayError(400, str(e)) from e
    return {"data": [{**r, "cost_usd": r["cost_micro"] / 1e6} for r in rows]}


class BudgetIn(BaseModel):
    scope: Literal["key", "principal", "org"]
    id: str
    period: Literal["minute", "day", "month"] = "month"
    metric: Literal["usd", "requests", "tokens"] = "usd"
    amount: float = Field(ge=0)


@router.get("/budgets")
async def budgets(request: Request, actor: Actor = require("usage.read")) -> dict:
    from lockgate.metering.budgets import list_limits

    return {"data": [asdict(x) for x in await to_thread.run_sync(list_limits, store(request))]}


@router.put("/budgets")
async def set_budget(request: Request, body: BudgetIn, actor: Actor = require("budgets.write")) -> dict:
    from lockgate.audit import record_admin
    from lockgate.metering.budgets import amount_of, set_limit

    try:  # money is kept in micro-dollars, like every cost in the store
        lim = await to_thread.run_sync(set_limit, store(request), body.scope, body.id, body.period, body.metric,
                                       amount_of(body.metric, body.amount))
    except ValueError as e:
        raise GatewayError(400, str(e)) from None
    await to_thread.run_sync(record_admin, store(request), actor.id, "budget.set", f"{body.scope}:{body.id}",
                             body.model_dump())
    return asdict(lim)


@router.get("/reports/directives/{directive_id}", response_class=PlainTextResponse)
async def directive_report(request: Request, directive_id: str, actor: Actor = require("reports.read")) -> str:
    from lockgate.audit.report import UnknownDirective, markdown

    try:
        return await to_thread.run_sync(markdown, store(request), directive_id)
    except UnknownDirective as e:
        raise GatewayError(404, str(e)) from None


class AdminIn(BaseModel):
    principal_id: str
    role: Literal["admin", "compliance", "security", "viewer"]


@router.post("/admins", status_code=201)
async def add_admin(request: Request, body: AdminIn, actor: Actor = require("admins.write")) -> dict:
    """Issues a personal admin key with a role to an existing principal (shown once)."""
    secret, info = await to_thread.run_sync(
        lambda: _run(keys.create_key, store(request), body.principal_id, name=f"admin:{body.role}", role=body.role,
                     actor=actor.id))
    return {**info.to_dict(), "key": secret}


@router.get("/incidents")
async def incidents_list(request: Request, all: bool = False, actor: Actor = require("incidents.read")) -> dict:
    from lockgate.monitor import incidents

    return {"data": await to_thread.run_sync(incidents.list_incidents, store(request), None if all else "open")}


@router.get("/incidents/{incident_id}")
async def incident_show(request: Request, incident_id: int, actor: Actor = require("incidents.read")) -> dict:
    from lockgate.monitor import incidents

    try:
        return await to_thread.run_sync(incidents.get_incident, store(request), incident_id)
    except incidents.NotFound as e:
        raise GatewayError(404, str(e)) from None


class ResolveIn(BaseModel):
    note: str = ""
    lift: bool = False  # also lift the throttle or suspension


@router.post("/incidents/{incident_id}/resolve")
async def incident_resolve(request: Request, incident_id: int, body: ResolveIn,
                           actor: Actor = require("incidents.write")) -> dict:
    from lockgate.monitor import incidents

    try:
        return await to_thread.run_sync(lambda: incidents.resolve(store(request), incident_id, body.note, body.lift,
                                                                  actor=actor.id))
    except incidents.NotFound as e:
        raise GatewayError(404, str(e)) from None


@router.get("/whoami")
async def whoami(request: Request, actor: Actor = require(None)) -> dict:
    """The caller's own id, role and permissions. Any admin key may ask: the console uses it to hide what the
    role cannot see (the endpoints still check)."""
    return {"id": actor.id, "role": actor.role, "permissions": sorted(roles.PERMISSIONS.get(actor.role, ()))}


@router.get("/audit/records")
async def audit_records(request: Request, limit: int = Query(50, ge=1, le=500), before: int | None = None,
                        kind: Literal["request", "admin"] | None = None,
                        actor: Actor = require("audit.read")) -> dict:
    """The newest chained records (decisions only; content stays behind content.read), newest first."""
    q = select(RECORDS.c.seq, RECORDS.c.kind, RECORDS.c.hash, RECORDS.c.body)
    q = q.order_by(RECORDS.c.seq.desc()).limit(limit)
    if before is not None:
        q = q.where(RECORDS.c.seq < before)
    if kind:
        q = q.where(RECORDS.c.kind == kind)

    def read() -> list[dict]:
        with store(request).engine.connect() as c:
            return [{"seq": r.seq, "kind": r.kind, "hash": r.hash, "record": json.loads(r.body)} for r in c.execute(q)]

    return {"data": await to_thread.run_sync(read)}


@router.get("/models")
async def models_status(request: Request, actor: Actor = require("models.read")) -> dict:
    """Every deployment of the catalog: this replica's load and breaker, and the withdrawn state every replica
    shares (like `lockgate models status`)."""
    gw = request.app.state.gateway
    routing = gw.pipeline.stage("routing")
    live = {(d["model"], d["deployment"]): d for d in (routing.status() if routing else [])}
    rows, unknown = [], {"inflight": None, "max_concurrency": None, "breaker": None}  # no longer in the catalog
    for st in await to_thread.run_sync(withdrawn.list_states, store(request)):
        here = live.pop((st["model"], st["deployment"]), unknown)
        rows.append({**here, **st, "withdrawn": st["state"] == "withdrawn"})
    for d in live.values():
        rows.append({**d, "state": "withdrawn" if d["withdrawn"] else "available", "reason": "",
                     "upstream_status": None, "changed_at": None, "changed_by": "", "incidents": 0})
    rows.sort(key=lambda r: (r["model"], r["deployment"]))
    return {"data": rows, "catalog": sorted(gw.catalog)}
