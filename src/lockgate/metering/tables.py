"""Metering tables (schema in migration 0004). Money is integer micro-USD: no float drift in sums."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from lockgate.store.models import Base


class MeterLimit(Base):
    __tablename__ = "meter_limits"
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # key | principal | org
    scope_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)  # minute | day | month
    metric: Mapped[str] = mapped_column(String(8), primary_key=True)  # usd | requests | tokens
    amount: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MeterCounter(Base):
    __tablename__ = "meter_counters"
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    metric: Mapped[str] = mapped_column(String(8), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(16), primary_key=True)  # "2025-06", "2025-06-01", ...
    spent: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger)


class MeterUsage(Base):
    __tablename__ = "meter_usage"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    org: Mapped[str] = mapped_column(String(128), primary_key=True)
    principal: Mapped[str] = mapped_column(String(128), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    tokens_in: Mapped[int] = mapped_column(BigInteger)
    tokens_out: Mapped[int] = mapped_column(BigInteger)
    cost_micro: Mapped[int] = mapped_column(BigInteger)


LIMITS, COUNTERS, USAGE = MeterLimit.__table__, MeterCounter.__table__, MeterUsage.__table__


def insert_for(conn, table):
    """INSERT with ON CONFLICT support for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
