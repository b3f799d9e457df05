"""Admin API: the same operations as the CLI, guarded by LOCKGATE_ADMIN_TOKEN."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from lockgate.admin import roles
from lockgate.admin.roles import Actor
from lockgate.errors import GatewayError
from lockgate.identity import keys, principals

router = APIRouter(prefix="/admin/v1", tags=["admin"])


def require(permission: str | None):
    """A dependency: the caller's admin key must carry a role with `permission` (None: any admin key).
    Refusals are audited."""

    async def check(request: Request) -> Actor:
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key")
        st = store(request)
        try:
            actor = await to_thread.run_sync(roles.authenticate, st, given)
        except roles.Unauthenticated as e:
            raise GatewayError(401, f"Admin API: {e}.") from None
        if permission is not None and not actor.may(permission):
            what = f"{request.method} {request.url.path}"
            await to_thread.run_sync(roles.denied, st, actor, permission, what)
            raise GatewayError(403, f"Role {actor.role!r} may not {permission} ({what}).", code="forbidden")
        request.state.actor = actor
        return actor

    return Depends(check)


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
    role: Literal["admin", "compliance", "security", "viewer"] | None = None  # an admin key, per person


def _run(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except keys.NotFound as e:
        raise GatewayError(404, str(e)) from None
    except principals.Exists as e:
        raise GatewayError(409, str(e)) from None
    except ValueError as e:  # e.g. an expiry already past
        raise GatewayError(400, str(e)) from None


@router.get("/principals")
async def list_principals(request: Request, org: str | None = None, actor: Actor = require("principals.read")) -> dict:
    return {"data": await to_thread.run_sync(lambda: principals.list_principals(store(request), org))}


@router.post("/principals", status_code=201)
async def add_principal(request: Request, body: NewPrincipal, actor: Actor = require("principals.write")) -> dict:
    return await to_thread.run_sync(lambda: _run(principals.add_principal, store(request), body.id, body.name, body.org, None, actor.id))


@router.get("/principals/{pid}")
async def show_principal(request: Request, pid: str, actor: Actor = require("principals.read")) -> dict:
    return await to_thread.run_sync(lambda: _run(principals.get_principal, store(request), pid))


@router.get("/keys")
async def list_keys(request: Request, principal_id: str | None = None, actor: Actor = require("keys.read")) -> dict:
    ks = await to_thread.run_sync(lambda: keys.list_keys(store(request), principal_id))
    return {"data": [k.to_dict() for k in ks]}


@router.post("/keys", status_code=201)
async def create_key(request: Request, body: NewKey, actor: Actor = require("keys.write")) -> dict:
    secret, info = await to_thread.run_sync(
        lambda: _run(keys.create_key, store(request), body.principal_id, expires_at=body.expires_at, name=body.name,
                     role=body.role, actor=actor.id))
    return {**info.to_dict(), "key": secret}


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str, actor: Actor = require("keys.write")) -> dict:
    info = await to_thread.run_sync(lambda: _run(keys.revoke_key, store(request), key_id, actor.id))
    return info.to_dict()
