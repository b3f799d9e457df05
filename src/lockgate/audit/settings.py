"""The `audit:` section of the config file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: bool = True  # keep prompts and answers (encrypted) for `content_days`
    content_days: float = Field(30, ge=0, le=36500)
    checkpoint_seconds: float = Field(5.0, gt=0)  # sign the head at most this often (and on shutdown)
    purge_seconds: float = Field(3600, gt=0)  # how often the background purge runs
    max_batch: int = Field(1000, ge=1)  # records per group commit
    # Journal each record to a local file before its answer completes (survives kill -9 at the cost of a
    # write); off, the answer waits for the database group commit instead.
    journal: bool = True
    # With the journal, a group commit waits up to this long to gather more records: fewer, larger
    # transactions, and less of the writer thread in the request path's way. Nobody waits on it.
    commit_linger: float = Field(0.05, ge=0, le=5)
    # fsync the journal (grouped) before the answer completes, and each SQLite group commit: survives
    # power loss. Off, a record survives kill -9, not power loss.
    fsync: bool = False
    replica_id: str | None = None  # names this process's journal (default $LOCKGATE_REPLICA_ID, else hostname)

    @classmethod
    def of(cls, config) -> "AuditSettings":
        return cls.model_validate(config.audit or {})
