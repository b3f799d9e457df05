"""Principals: the people and services behind keys and tokens."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import select

from lockgate.audit import record_admin
from lockgate.identity.keys import NotFound, aware, now
from lockgate.store import Store
from lockgate.store.models import Principal

if TYPE_CHECKING:
    from lockgate.identity.attributes import AttestationIn


class Exists(ValueError):
    pass


class InvalidId(ValueError):
    pass


ID_PATTERN = r"^[A-Za-z0-9._@:+-]{1,128}$"  # e-mail addresses, employee numbers, OIDC subjects


def check_id(id: str) -> str:
    """``id`` if it is a usable principal id (1-128 characters: letters, digits and ._@:+-), else InvalidId."""
    if not re.fullmatch(ID_PATTERN, id or ""):
        raise InvalidId(f"principal id {id!r} must be 1-128 characters of letters, digits and . _ @ : + -")
    return id


def to_dict(p: Principal) -> dict:
    return {
        "id": p.id,
        "name": p.name,
        "org": p.org,
        "status": p.status,
        "created_at": aware(p.created_at).isoformat(),
        "attributes": p.attributes or {},
    }


def add_principal(store: Store, id: str, name: str = "", org: str | None = None, attributes: dict | None = None,
                  actor: str | None = None) -> dict:
    check_id(id)
    with store.change() as s:
        if s.get(Principal, id) is not None:
            raise Exists(f"principal {id!r} already exists")
        p = Principal(id=id, name=name or id, org=org, created_at=now(), attributes=attributes or {}, status="active")
        s.add(p)
        s.flush()
        record_admin(s, actor, "principal.add", id, {"org": org, "attributes": sorted((attributes or {}).keys())})
        return to_dict(p)


def get_principal(store: Store, id: str) -> dict:
    with store.session() as s:
        p = s.get(Principal, id)
        if p is None:
            raise NotFound(f"principal {id!r} does not exist")
        return to_dict(p)


def list_principals(store: Store, org: str | None = None) -> list[dict]:
    with store.session() as s:
        q = select(Principal).order_by(Principal.id)
        if org:
            q = q.where(Principal.org == org)
        return [to_dict(p) for p in s.scalars(q)]


def attest(store: Store, id: str, a: "AttestationIn", actor: str | None = None) -> dict:
    """Records an attested fact (e.g. an org admin vouching for a member's status)."""
    from lockgate.identity.attributes import Attestation, merge, normalise_fact

    att = Attestation(value=normalise_fact(a.fact, a.value), source=a.source, assurance=a.assurance,
                      verified_at=a.verified_at or now(), expires_at=a.expires_at, reference=a.reference,
                      attested_by=a.attested_by)
    with store.change() as s:
        p = s.get(Principal, id)
        if p is None:
            raise NotFound(f"principal {id!r} does not exist")
        p.attributes = merge(p.attributes, a.fact, att, now())
        s.flush()
        record_admin(s, actor, "principal.attest", id, {"fact": a.fact, "assurance": a.assurance,
                                                         "reference": a.reference, "source": a.source})
        return to_dict(p)


def principal_for_token(store: Store, id: str, claims: dict, iss) -> Principal:
    """The stored principal a token names, created on first sight (a plain insert: no cache must drop)."""
    from sqlalchemy.exc import IntegrityError

    for _ in range(2):  # two replicas seeing a new token at once: the loser re-reads
        try:
            with store.session() as s:
                p = s.get(Principal, id)
                if p is None:
                    name_claim, org_claim = iss.claims.get("name"), iss.claims.get("org")
                    p = Principal(id=id, name=str(claims.get(name_claim) or id), org=claims.get(org_claim) or None,
                                  created_at=now(), attributes={}, status="active")
                    s.add(p)
                    s.flush()
                s.expunge(p)
                return p
        except IntegrityError:
            continue
    raise RuntimeError(f"could not create principal {id!r}")
