"""Identity stage: API key (Bearer or x-api-key) -> Subject. Unknown, revoked or expired keys are 401."""

from __future__ import annotations

import time

from anyio import to_thread

from lockgate.context import RequestContext
from lockgate.errors import GatewayError
from lockgate.identity.attributes import Requirements, conclusions
from lockgate.identity.keys import digest, find_key, now
from lockgate.identity.oidc import TokenError, Verifier, attestations, looks_like_jwt
from lockgate.identity.principals import principal_for_token
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
        self.tokens: dict[str, tuple[Subject, float]] = {}
        issuers = gateway.config.identity.get("oidc") or []
        self.oidc = Verifier(issuers) if issuers else None
        self.requirements = Requirements.model_validate(gateway.config.identity)
        self._attrs: dict[str, tuple[dict, float]] = {}
        gateway.on_revision(self.cache.clear)
        gateway.on_revision(self.tokens.clear)
        gateway.on_revision(self._attrs.clear)

    def attributes(self, subject: Subject) -> dict:
        """Established attributes, re-derived at least every minute so expiries take effect."""
        now = time.time()
        key = f"{subject.source}:{subject.id}"
        hit = self._attrs.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        attrs = conclusions(subject.attributes, subject.org, self.requirements)
        if len(self._attrs) > 100_000:
            self._attrs.clear()
        self._attrs[key] = (attrs, now + 60)
        return attrs

    async def _token(self, token: str) -> Subject:
        hit = self.tokens.get(token)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        try:
            iss, claims = await to_thread.run_sync(self.oidc.verify, token)
        except TokenError as e:
            raise GatewayError(401, f"Invalid token: {e}.", code="invalid_token") from None
        pid = str(claims[iss.principal_claim])
        stored = await to_thread.run_sync(principal_for_token, self.gw.store, pid, claims, iss)
        subject = Subject(pid, stored.name, stored.org, stored.status, attestations(iss, claims, stored.attributes),
                          key_id=None, source="oidc")
        if len(self.tokens) > 100_000:
            self.tokens.clear()
        self.tokens[token] = (subject, float(claims["exp"]))
        return subject

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
        if self.oidc is not None and looks_like_jwt(secret):
            subject = await self._token(secret)
            if subject.status != "active":
                raise GatewayError(403, f"Principal {subject.id} is {subject.status}.", code="principal_suspended")
            ctx.principal, ctx.attributes = subject, self.attributes(subject)
            return None
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
        ctx.principal, ctx.key_id = subject, info.id
        ctx.attributes = self.attributes(subject)
        return None
