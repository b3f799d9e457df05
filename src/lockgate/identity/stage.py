"""Identity stage: API key (Bearer or x-api-key) -> Subject. Unknown, revoked or expired keys are 401."""

from __future__ import annotations

from anyio import to_thread

from lockgate.context import RequestContext
from lockgate.errors import GatewayError
from lockgate.identity.keys import digest, find_key, now
from lockgate.identity.subject import Subject
from lockgate.pipeline import BaseStage


def presented_credential(headers) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class IdentityStage(BaseStage):
    name = "identity"

    def __init__(self, gateway) -> None:
        self.gw = gateway
        # digest -> (key info, subject) or None; cleared whenever the store's revision moves.
        self.cache: dict[str, tuple | None] = {}
        gateway.on_revision(self.cache.clear)

    async def _lookup(self, secret: str):
        h = digest(secret)
        try:
            return self.cache[h]
        except KeyError:
            pass
        found = await to_thread.run_sync(find_key, self.gw.store, secret)
        if found is not None:
            info, p = found
            found = (info, Subject(p.id, p.name, p.org, p.status, dict(p.attributes or {}), key_id=info.id))
        if len(self.cache) > 100_000:  # bounded: a flood of random keys must not grow memory
            self.cache.clear()
        self.cache[h] = found
        return found

    async def on_request(self, ctx: RequestContext):
        secret = presented_credential(ctx.headers)
        if secret is None:
            raise GatewayError(401, "Missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`.")
        found = await self._lookup(secret)
        if found is None:
            raise GatewayError(401, "Invalid API key.", code="invalid_api_key")
        info, subject = found
        if info.revoked_at is not None:
            raise GatewayError(401, "This API key has been revoked.", code="revoked_api_key")
        if info.expires_at is not None and info.expires_at <= now():
            raise GatewayError(401, "This API key has expired.", code="expired_api_key")
        if subject.status != "active":
            raise GatewayError(403, f"Principal {subject.id} is {subject.status}.", code="principal_suspended")
        ctx.principal = subject
        ctx.key_id = info.id
        return None
