"""Attested facts about a principal, and what they allow us to conclude.

Each fact carries its source, assurance (self < org < kyc), verified-at and expires-at. Conclusions are
derived, never stored: a fact counts only at or above the assurance the config requires and before it
expires. Unknown, weak or expired means "not established" — so `us_person` fails closed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ASSURANCE = {"none": 0, "self": 1, "org": 2, "kyc": 3}
Assurance = Literal["self", "org", "kyc"]
FACTS = ("citizenships", "permanent_residence", "protected_individual", "programs")


class Attestation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any
    source: str
    assurance: Assurance
    verified_at: datetime
    expires_at: datetime | None = None
    reference: str | None = None  # contract, HR record, KYC case id
    attested_by: str | None = None

    @field_validator("verified_at", "expires_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=timezone.utc) if v is not None and v.tzinfo is None else v

    def valid(self, now: datetime, minimum: str) -> bool:
        return ASSURANCE[self.assurance] >= ASSURANCE[minimum] and (self.expires_at is None or self.expires_at > now)


class Requirements(BaseModel):
    """From config `identity:`; the weakest assurance each conclusion accepts."""

    model_config = ConfigDict(extra="ignore")
    us_person_assurance: Assurance = "org"
    program_assurance: Assurance = "org"


def normalise_fact(name: str, value: Any) -> Any:
    if name in ("citizenships", "programs"):
        items = value.split(";") if isinstance(value, str) else list(value or [])
        out = sorted({str(v).strip().upper() if name == "citizenships" else str(v).strip() for v in items if str(v).strip()})
        if name == "citizenships":
            bad = [c for c in out if len(c) != 2 or not c.isalpha()]
            if bad:
                raise ValueError(f"citizenships must be ISO 3166 alpha-2 codes, got {', '.join(bad)}")
        return out
    if name == "permanent_residence":
        v = (value or "").strip().upper()
        if v and (len(v) != 2 or not v.isalpha()):
            raise ValueError(f"permanent_residence must be an ISO 3166 alpha-2 code, got {value!r}")
        return v or None
    if name == "protected_individual":
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in ("true", "yes", "1", "y"):
            return True
        if s in ("false", "no", "0", "n", ""):
            return False
        raise ValueError(f"protected_individual must be true or false, got {value!r}")
    raise ValueError(f"unknown fact {name!r}; known: {', '.join(FACTS)}")


def merge(existing: dict | None, name: str, att: Attestation, now: datetime) -> dict:
    """Adds an attestation unless it would replace a stronger one that is still valid."""
    facts = dict(existing or {})
    old = facts.get(name)
    if old is not None:
        prev = Attestation.model_validate(old)
        if ASSURANCE[prev.assurance] > ASSURANCE[att.assurance] and prev.valid(now, "self"):
            return facts
    facts[name] = att.model_dump(mode="json")
    return facts


def conclusions(facts: dict | None, org: str | None, req: Requirements, now: datetime | None = None) -> dict:
    """The attributes policies see (the Cedar `Principal` entity). Only established facts appear."""
    now = now or datetime.now(timezone.utc)
    facts = facts or {}

    def established(name: str, minimum: str):
        # Hot path (every request, every principal in a plan): read the stored dict directly.
        raw = facts.get(name)
        if not isinstance(raw, dict) or ASSURANCE.get(raw.get("assurance"), 0) < ASSURANCE[minimum]:
            return None, "none"
        exp = raw.get("expires_at")
        if exp:
            try:
                when = datetime.fromisoformat(exp)
            except (TypeError, ValueError):
                return None, "none"  # unreadable expiry: not established
            if (when if when.tzinfo else when.replace(tzinfo=timezone.utc)) <= now:
                return None, "none"
        return raw.get("value"), raw["assurance"]

    cits, cit_level = established("citizenships", req.us_person_assurance)
    lpr, _ = established("permanent_residence", req.us_person_assurance)
    protected, _ = established("protected_individual", req.us_person_assurance)
    programs, _ = established("programs", req.program_assurance)
    cits = list(cits or [])
    us_person = "US" in cits or lpr == "US" or protected is True
    return {
        "us_person": bool(us_person),
        "citizenships": cits,
        "permanent_residence": lpr or "",
        "protected_individual": protected is True,
        "programs": list(programs or []),
        "org": org or "",
        "assurance": cit_level,
    }


class AttestationIn(BaseModel):
    """An attestation as an admin or a file submits it."""

    model_config = ConfigDict(extra="forbid")
    fact: Literal["citizenships", "permanent_residence", "protected_individual", "programs"]
    value: Any
    assurance: Assurance = "org"
    source: str = "admin"
    reference: str | None = None
    attested_by: str | None = None
    verified_at: datetime | None = None
    expires_at: datetime | None = None
    extra: dict = Field(default_factory=dict)

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, v: datetime | None) -> datetime | None:
        # an attestation that has already expired counts for nothing: recording it would look like a grant
        if v is not None and (v if v.tzinfo else v.replace(tzinfo=timezone.utc)) <= datetime.now(timezone.utc):
            raise ValueError("an expiry must be in the future")
        return v
