"""The directive document, as its users keep it under version control."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class DirectiveError(ValueError):
    """A directive that cannot be applied; the message says which and why."""


class Directive(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    title: str
    authority: str = ""
    issued_by: str = ""
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    models: list[str] = Field(min_length=1)
    when: str = "true"  # a Cedar condition over `principal` and `context`
    effect: Literal["reroute", "deny"]
    fallback: str | None = None
    notice: str = ""

    @field_validator("effective_from", "effective_until")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=timezone.utc) if v is not None and v.tzinfo is None else v

    @model_validator(mode="after")
    def _consistent(self) -> "Directive":
        if self.effect == "reroute" and not self.fallback:
            raise ValueError("effect `reroute` needs a `fallback` model")
        if self.effect == "deny" and self.fallback:
            raise ValueError("effect `deny` takes no `fallback`")
        if self.fallback in self.models:
            raise ValueError("the fallback cannot be one of the directive's own models")
        if self.effective_from and self.effective_until and self.effective_until <= self.effective_from:
            raise ValueError("effective_until must be after effective_from")
        if any(tok in self.when for tok in (";", "permit", "forbid", "}")):
            raise ValueError("`when` must be a single Cedar condition expression")
        return self

    def active(self, now: datetime) -> bool:
        return (self.effective_from is None or self.effective_from <= now) and (
            self.effective_until is None or now < self.effective_until)

    def canonical(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()

    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


def parse(text: str, where: str = "<directive>") -> Directive:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DirectiveError(f"{where}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise DirectiveError(f"{where}: a directive is a YAML mapping")
    try:
        return Directive.model_validate(data)
    except ValidationError as e:
        lines = [f"  {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in e.errors()]
        raise DirectiveError(f"{where}: invalid directive:\n" + "\n".join(lines)) from None


def load(path: str | Path) -> Directive:
    p = Path(path)
    try:
        return parse(p.read_text(encoding="utf-8"), str(p))
    except OSError as e:
        raise DirectiveError(f"{p}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise DirectiveError(f"{p}: not UTF-8 text") from None
