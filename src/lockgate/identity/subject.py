"""The authenticated caller as the rest of the pipeline sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Subject:
    id: str
    name: str
    org: str | None
    status: str = "active"
    attributes: dict[str, Any] = field(default_factory=dict)
    key_id: str | None = None
    source: str = "api_key"  # api_key | oidc
