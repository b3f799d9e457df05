"""Audit tables (schema in migration 0003)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.store.models import Base

TS = DateTime(timezone=True)


class AuditHead(Base):
    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    checkpointed_at: Mapped[float] = mapped_column(Float)


class AuditRecord(Base):
    __tablename__ = "audit_records"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(TS)
    kind: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    head: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(TS)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)


class AuditContent(Base):
    __tablename__ = "audit_content"
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(TS)
    blob: Mapped[bytes] = mapped_column(LargeBinary)


HEAD, RECORDS, CHECKPOINTS, CONTENT = (AuditHead.__table__, AuditRecord.__table__, AuditCheckpoint.__table__,
                                       AuditContent.__table__)
