"""Monitor tables (schema in migration 0006). Shared by every replica: counts are the store's, not a process's."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.store.models import Base

TS = DateTime(timezone=True)


class MonitorEvent(Base):
    """One signalled request: a safeguard hit, a refusal and/or a jailbreak-template match."""

    __tablename__ = "monitor_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(TS)
    principal: Mapped[str] = mapped_column(String(128))
    org: Mapped[str | None] = mapped_column(String(128), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    request_id: Mapped[str] = mapped_column(String(64))
    kinds: Mapped[str] = mapped_column(String(64))  # comma list: safeguard, refusal, jailbreak
    domain: Mapped[str | None] = mapped_column(String(32), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    similarity: Mapped[float | None] = mapped_column(Float, nullable=True)
    template: Mapped[str | None] = mapped_column(String(128), nullable=True)
    __table_args__ = (Index("ix_monitor_events_principal_at", "principal", "at"),
                      Index("ix_monitor_events_key_at", "key_id", "at"),
                      Index("ix_monitor_events_org_at", "org", "at"))


class MonitorIncident(Base):
    __tablename__ = "monitor_incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))  # principal | key | org
    scope_id: Mapped[str] = mapped_column(String(128))
    principal: Mapped[str | None] = mapped_column(String(128), nullable=True)
    org: Mapped[str | None] = mapped_column(String(128), nullable=True)
    state: Mapped[str] = mapped_column(String(16))  # open | resolved
    level: Mapped[str] = mapped_column(String(16))  # flag | throttle | suspend
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    contained: Mapped[bool] = mapped_column(Boolean, default=False)  # throttle/suspension in force
    hits: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)
    resolved_at: Mapped[datetime | None] = mapped_column(TS, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[list] = mapped_column(JSON, default=list)
    history: Mapped[list] = mapped_column(JSON, default=list)  # ladder steps and state changes, with audit seqs
    __table_args__ = (Index("ix_monitor_incidents_scope", "scope", "scope_id", "state"),)


class MonitorThrottleHit(Base):
    """A request let through under a throttle: the rolling minute is counted across replicas."""

    __tablename__ = "monitor_throttle_hits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope_id: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(TS)
    __table_args__ = (Index("ix_monitor_throttle_hits_scope_at", "scope_id", "at"),)
