"""The `metering:` section of the config file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MeteringSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chars_per_token: float = Field(4.0, gt=0)  # local count when the upstream reports no usage
    flush_seconds: float = Field(1.0, gt=0)  # how often spend rollups are written

    @classmethod
    def of(cls, config) -> "MeteringSettings":
        return cls.model_validate(config.metering or {})
