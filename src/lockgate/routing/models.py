"""Routing's table: which deployments an upstream has withdrawn, shared by every replica and the CLI."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.store.models import Base


class DeploymentState(Base):
    """One row per (catalog model, deployment) that was ever withdrawn; restoring keeps the row as history."""

    __tablename__ = "routing_deployment_state"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(512), primary_key=True)  # see balancer.deployment_key
    state: Mapped[str] = mapped_column(String(16))  # withdrawn | restored
    reason: Mapped[str] = mapped_column(Text, default="")
    upstream_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str] = mapped_column(String(128), default="")  # gateway | probe | cli
    incidents: Mapped[int] = mapped_column(Integer, default=0)
