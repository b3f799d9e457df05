"""API keys: random, shown once, stored as SHA-256 (they are high-entropy, so no slow hash needed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select

from lockgate.audit import record_admin
from lockgate.store import Store
from lockgate.store.models import ApiKey, Principal

PREFIX = "lg-"


def now() -> datetime:
    return datetime.now(timezone.utc)


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class NotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    principal_id: str
    prefix: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    role: str | None

    @classmethod
    def of(cls, k: ApiKey) -> "KeyInfo":
        return cls(k.id, k.principal_id, k.prefix, k.name, aware(k.created_at), aware(k.expires_at), aware(k.revoked_at), k.role)

    def to_dict(self) -> dict:
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {
            "id": self.id,
            "principal_id": self.principal_id,
            "prefix": self.prefix,
            "name": self.name,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "role": self.role,
        }


def create_key(
    store: Store,
    principal_id: str,
    *,
    expires_at: datetime | None = None,
    name: str = "",
    role: str | None = None,
    actor: str | None = None,
) -> tuple[str, KeyInfo]:
    """Returns (secret, info). The secret is never stored and cannot be shown again."""
    if expires_at is not None and aware(expires_at) <= now():  # a key that could never be used: a typo
        raise ValueError(f"expires_at {aware(expires_at).isoformat()} is already past")
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id="key_" + secrets.token_hex(8),
        principal_id=principal_id,
        hash=digest(secret),
        prefix=secret[: len(PREFIX) + 6],
        name=name,
        created_at=now(),
        expires_at=aware(expires_at).astimezone(timezone.utc) if expires_at else None,
        role=role,
        note="",
    )
    with store.change() as s:
        if s.get(Principal, principal_id) is None:
            raise NotFound(f"principal {principal_id!r} does not exist")
        s.add(key)
        s.flush()
        record_admin(s, actor, "key.create", key.id, {"principal": principal_id, "name": name, "role": role})
        return secret, KeyInfo.of(key)


def revoke_key(store: Store, key_id: str, actor: str | None = None) -> KeyInfo:
    with store.change() as s:
        key = s.get(ApiKey, key_id)
        if key is None:
            raise NotFound(f"key {key_id!r} does not exist")
        if key.revoked_at is None:
            key.revoked_at = now()
            record_admin(s, actor, "key.revoke", key_id, {"principal": key.principal_id})
        s.flush()
        return KeyInfo.of(key)


def has_admin(store: Store) -> bool:
    """Whether some unrevoked key has the admin role (the one role that may add admins)."""
    with store.session() as s:
        q = select(ApiKey.id).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None)).limit(1)
        return s.scalars(q).first() is not None


def list_keys(store: Store, principal_id: str | None = None) -> list[KeyInfo]:
    with store.session() as s:
        q = select(ApiKey).order_by(ApiKey.created_at)
        if principal_id:
            q = q.where(ApiKey.principal_id == principal_id)
        return [KeyInfo.of(k) for k in s.scalars(q)]


def find_key(store: Store, secret: str) -> tuple[KeyInfo, Principal] | None:
    with store.session() as s:
        row = s.execute(
            select(ApiKey, Principal).join(Principal, ApiKey.principal_id == Principal.id).where(ApiKey.hash == digest(secret))
        ).first()
        if row is None:
            return None
        key, principal = row
        s.expunge(principal)
        return KeyInfo.of(key), principal
