"""OIDC / JWT bearer tokens from trusted issuers, verified with joserfc.

A valid token names a principal; its claims become attestations at the assurance level configured for
its issuer, expiring with the token. Nothing here trusts a claim the signature does not cover.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lockgate.identity.attributes import Assurance, Attestation, merge, normalise_fact


class Issuer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    issuer: str
    audience: str
    jwks_file: str | None = None
    jwks_url: str | None = None
    assurance: Assurance = "org"
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    principal_claim: str = "sub"
    # lockgate attribute -> claim name in the token
    claims: dict[str, str] = Field(default_factory=lambda: {
        "name": "name", "org": "org", "citizenships": "citizenships", "permanent_residence": "permanent_residence",
        "protected_individual": "protected_individual", "programs": "programs"})

    @model_validator(mode="after")
    def _one_source(self) -> "Issuer":
        if bool(self.jwks_file) == bool(self.jwks_url):
            raise ValueError("an OIDC issuer needs exactly one of jwks_file or jwks_url")
        return self


class TokenError(ValueError):
    pass


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("ey")


class Verifier:
    def __init__(self, issuers: list[dict]) -> None:
        self.issuers = {i.issuer: i for i in (Issuer.model_validate(x) for x in issuers)}
        self._keys: dict[str, tuple[KeySet, float]] = {}

    def _keyset(self, iss: Issuer) -> KeySet:
        hit = self._keys.get(iss.issuer)
        if hit and hit[1] > time.time():
            return hit[0]
        if iss.jwks_file:
            data = json.loads(Path(iss.jwks_file).read_text())
        else:
            data = httpx.get(iss.jwks_url, timeout=5).raise_for_status().json()
        ks = KeySet.import_key_set(data)
        self._keys[iss.issuer] = (ks, time.time() + 300)  # re-read every 5 min: key rotation
        return ks

    def verify(self, token: str) -> tuple[Issuer, dict]:
        try:
            unverified = json.loads(_b64(token.split(".")[1]))
        except ValueError:
            raise TokenError("malformed token") from None
        iss = self.issuers.get(unverified.get("iss"))
        if iss is None:
            raise TokenError("token from an untrusted issuer")
        try:
            tok = jwt.decode(token, self._keyset(iss), algorithms=iss.algorithms)
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": iss.issuer},
                                  aud={"essential": True, "value": iss.audience},
                                  exp={"essential": True}).validate(tok.claims)
        except (JoseError, ValueError) as e:
            raise TokenError(f"token rejected: {e}") from None
        if not tok.claims.get(iss.principal_claim):
            raise TokenError(f"token has no {iss.principal_claim!r} claim")
        return iss, tok.claims


def attestations(iss: Issuer, claims: dict, stored: dict | None) -> dict:
    """The stored facts, with the token's claims merged in as attestations of the issuer's level."""
    now = datetime.now(timezone.utc)
    facts = dict(stored or {})
    iat = datetime.fromtimestamp(claims.get("iat", time.time()), timezone.utc)
    exp = datetime.fromtimestamp(claims["exp"], timezone.utc)
    for fact in ("citizenships", "permanent_residence", "protected_individual", "programs"):
        name = iss.claims.get(fact)
        if name and name in claims:
            try:
                value = normalise_fact(fact, claims[name])
            except ValueError:
                continue  # a malformed claim establishes nothing
            att = Attestation(value=value, source=f"oidc:{iss.issuer}", assurance=iss.assurance, verified_at=iat,
                              expires_at=exp)
            facts = merge(facts, fact, att, now)
    return facts


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
