"""Admin API: the same operations as the CLI, guarded by LOCKGATE_ADMIN_TOKEN."""

from __future__ import annotations

import hmac
import os
from datetime import datetime

from anyio import to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from lockgate.errors import GatewayError
from lockgate.identity import keys, principals

router = APIRouter(prefix="/admin/v1", tags=["admin"])


def require_admin(request: Request) -> None:
    token = os.environ.get("LOCKGATE_ADMIN_TOKEN")
    if not token:
        raise GatewayError(403, "The admin API is disabled: set LOCKGATE_ADMIN_TOKEN on the gateway to enable it.")
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise GatewayError(401, "Missing or invalid admin token.")


def store(request: Request):
    return request.app.state.gateway.store


class NewPrincipal(BaseModel):
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._@:+-]+$")
    name: str = ""
    org: str | None = None


class NewKey(BaseModel):
    principal_id: str
    expires_at: datetime | None = None
    name: str = ""


def _run(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except keys.NotFound as e:
        raise GatewayError(404, str(e)) from None
    except principals.Exists as e:
        raise GatewayError(409, str(e)) from None


@router.get("/principals", dependencies=[Depends(require_admin)])
async def list_principals(request: Request, org: str | None = None) -> dict:
    return {"data": await to_thread.run_sync(lambda: principals.list_principals(store(request), org))}


@router.post("/principals", status_code=201, dependencies=[Depends(require_admin)])
async def add_principal(request: Request, body: NewPrincipal) -> dict:
    return await to_thread.run_sync(lambda: _run(principals.add_principal, store(request), body.id, body.name, body.org))


@router.get("/principals/{pid}", dependencies=[Depends(require_admin)])
async def show_principal(request: Request, pid: str) -> dict:
    return await to_thread.run_sync(lambda: _run(principals.get_principal, store(request), pid))


@router.get("/keys", dependencies=[Depends(require_admin)])
async def list_keys(request: Request, principal_id: str | None = None) -> dict:
    ks = await to_thread.run_sync(lambda: keys.list_keys(store(request), principal_id))
    return {"data": [k.to_dict() for k in ks]}


@router.post("/keys", status_code=201, dependencies=[Depends(require_admin)])
async def create_key(request: Request, body: NewKey) -> dict:
    secret, info = await to_thread.run_sync(
        lambda: _run(keys.create_key, store(request), body.principal_id, expires_at=body.expires_at, name=body.name))
    return {**info.to_dict(), "key": secret}


@router.post("/keys/{key_id}/revoke", dependencies=[Depends(require_admin)])
async def revoke_key(request: Request, key_id: str) -> dict:
    info = await to_thread.run_sync(lambda: _run(keys.revoke_key, store(request), key_id))
    return info.to_dict()
