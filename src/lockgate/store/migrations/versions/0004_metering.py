"""metering tables: limits, their counters per window, and daily usage rollups

Revision ID: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # metric: usd (amounts in micro-USD) | requests | tokens; period: minute | day | month
    op.create_table(
        "meter_limits",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.String(128), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "meter_counters",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.String(128), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("bucket", sa.String(16), primary_key=True),
        sa.Column("spent", sa.BigInteger, nullable=False),
        sa.Column("reserved", sa.BigInteger, nullable=False),
    )
    # Aggregated, not one row per request: spend queries stay cheap (the audit trail has the detail).
    op.create_table(
        "meter_usage",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("org", sa.String(128), primary_key=True),
        sa.Column("principal", sa.String(128), primary_key=True),
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("tokens_in", sa.BigInteger, nullable=False),
        sa.Column("tokens_out", sa.BigInteger, nullable=False),
        sa.Column("cost_micro", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for t in ("meter_usage", "meter_counters", "meter_limits"):
        op.drop_table(t)
