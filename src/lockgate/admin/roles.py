"""Who may do what: admin access is per person — an admin key bound to a principal with one role.

`LOCKGATE_ADMIN_TOKEN`, if set, is a break-glass bootstrap credential with the admin role (to create the
first admins); every use of it is audited like any other actor.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from lockgate.identity.keys import find_key, now

ROLES = ("admin", "compliance", "security", "viewer")

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "compliance": frozenset({"directives.read", "directives.write", "principals.read", "principals.write",
                             "reports.read", "usage.read", "audit.read"}),
    "security": frozenset({"incidents.read", "incidents.write", "content.read", "audit.read", "principals.read",
                           "directives.read", "usage.read", "reports.read"}),
    "viewer": frozenset({"metrics.read", "reports.read", "usage.read", "directives.read"}),
}


@dataclass(frozen=True)
class Actor:
    id: str
    role: str

    def may(self, permission: str) -> bool:
        perms = PERMISSIONS.get(self.role, frozenset())
        return "*" in perms or permission in perms


class Unauthenticated(Exception):
    pass


def authenticate(store, secret: str | None) -> Actor:
    """An admin credential -> Actor. Ordinary (role-less) API keys are not admin credentials."""
    if not secret:
        raise Unauthenticated("missing admin credential")
    boot = os.environ.get("LOCKGATE_ADMIN_TOKEN")
    if boot and hmac.compare_digest(secret.encode(), boot.encode()):
        return Actor("bootstrap-token", "admin")
    found = find_key(store, secret)
    if found is None:
        raise Unauthenticated("invalid admin credential")
    info, principal = found
    if info.role not in ROLES:
        raise Unauthenticated("this key has no admin role")
    if info.revoked_at is not None or (info.expires_at is not None and info.expires_at <= now()):
        raise Unauthenticated("this admin key is revoked or expired")
    if principal.status != "active":
        raise Unauthenticated(f"admin principal {principal.id} is {principal.status}")
    return Actor(principal.id, info.role)


def denied(store, actor: Actor, permission: str, what: str) -> None:
    """Records a refused admin action in the audit trail."""
    from lockgate.audit import record_admin

    record_admin(store, actor.id, "admin.denied", what, {"role": actor.role, "permission": permission})
