"""The `identity:` section of the config file."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from lockgate.identity.attributes import Requirements
from lockgate.identity.oidc import Issuer


class IdentitySettings(Requirements):
    model_config = ConfigDict(extra="forbid")
    oidc: list[Issuer] = Field(default_factory=list)
