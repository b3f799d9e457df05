"""The `audit:` section of the config file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: bool = True  # keep prompts and answers (encrypted) for `content_days`
    content_days: float = Field(30, ge=0)
    checkpoint_seconds: float = Field(5.0, gt=0)  # sign the head at most this often (and on shutdown)
    purge_seconds: float = Field(3600, gt=0)  # how often the background purge runs
    max_batch: int = Field(1000, ge=1)  # records per group commit
    # SQLite: fsync every group commit (survives power loss). Off, a commit survives kill -9, not power loss.
    fsync: bool = False

    @classmethod
    def of(cls, config) -> "AuditSettings":
        return cls.model_validate(config.audit or {})
