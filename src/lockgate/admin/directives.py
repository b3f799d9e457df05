"""Admin API for directives and attestations: the same operations as the CLI."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Body, Query, Request
from pydantic import ValidationError

from lockgate.admin.roles import Actor
from lockgate.admin.routes import require, store
from lockgate.directives import service
from lockgate.directives import store as dstore
from lockgate.directives.model import DirectiveError, parse
from lockgate.errors import GatewayError
from lockgate.identity import keys, principals
from lockgate.identity.attributes import AttestationIn

router = APIRouter(prefix="/admin/v1", tags=["directives"])


async def _directive(request: Request):
    text = (await request.body()).decode("utf-8", "replace")
    try:
        return parse(text, "request body")
    except DirectiveError as e:
        raise GatewayError(400, str(e)) from None


def _call(fn, *args):
    try:
        return fn(*args)
    except DirectiveError as e:
        raise GatewayError(400, str(e)) from None


@router.post("/directives/plan")
async def plan(request: Request, days: int = Query(7, ge=1, le=3650), actor: Actor = require("directives.read")) -> dict:
    d = await _directive(request)
    conf = request.app.state.gateway.config
    result = await to_thread.run_sync(lambda: _call(service.plan, store(request), conf, d, days))
    return result.to_dict()


@router.post("/directives", status_code=201)
async def apply(request: Request, actor: Actor = require("directives.write")) -> dict:
    d = await _directive(request)
    conf = request.app.state.gateway.config
    row = await to_thread.run_sync(lambda: _call(service.apply, store(request), conf, d, actor.id))
    return {"id": d.id, "version": row.seq, "hash": row.hash, "signature": row.signature}


@router.delete("/directives/{directive_id}")
async def revoke(request: Request, directive_id: str, actor: Actor = require("directives.write")) -> dict:
    row = await to_thread.run_sync(lambda: _call(service.revoke, store(request), directive_id, actor.id))
    return {"id": directive_id, "version": row.seq, "hash": row.hash}


@router.get("/directives")
async def list_(request: Request, actor: Actor = require("directives.read")) -> dict:
    state = await to_thread.run_sync(dstore.load_state, store(request))
    return {"policy_version": state.version, "data": [d.model_dump(mode="json") for d in state.applied]}


@router.get("/directives/history")
async def history(request: Request, directive_id: str | None = None, actor: Actor = require("directives.read")) -> dict:
    rows = await to_thread.run_sync(dstore.history, store(request), directive_id)
    return {"data": [{"version": r.seq, "directive": r.directive_id, "action": r.action, "at": r.applied_at.isoformat(),
                      "by": r.applied_by, "digest": r.digest, "prev_hash": r.prev_hash, "hash": r.hash,
                      "signature": r.signature} for r in rows]}


@router.get("/directives/verify")
async def verify(request: Request, actor: Actor = require("directives.read")) -> dict:
    """Checks the version chain and every signature, like `lockgate directive verify`."""
    problems = await to_thread.run_sync(dstore.verify, store(request))
    return {"ok": not problems, "problems": problems}


@router.post("/principals/{pid}/attestations", status_code=201)
async def attest(request: Request, pid: str, body: dict = Body(...), actor: Actor = require("principals.write")) -> dict:
    try:
        a = AttestationIn.model_validate({"source": f"attestation:{actor.id}", "attested_by": actor.id, **body})
        return await to_thread.run_sync(principals.attest, store(request), pid, a, actor.id)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"])) or "body"
        raise GatewayError(400, f"Invalid attestation: {where}: {first['msg'].removeprefix('Value error, ')}",
                           param=where) from None
    except keys.NotFound as e:
        raise GatewayError(404, str(e)) from None
    except ValueError as e:
        raise GatewayError(400, str(e)) from None
