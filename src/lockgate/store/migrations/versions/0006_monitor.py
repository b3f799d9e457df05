"""monitor tables: signalled requests, incidents, throttle hits (shared by replicas and the CLI)

Revision ID: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitor_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("org", sa.String(128), nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("kinds", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(32), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("similarity", sa.Float, nullable=True),
        sa.Column("template", sa.String(128), nullable=True),
    )
    op.create_index("ix_monitor_events_principal_at", "monitor_events", ["principal", "at"])
    op.create_index("ix_monitor_events_key_at", "monitor_events", ["key_id", "at"])
    op.create_index("ix_monitor_events_org_at", "monitor_events", ["org", "at"])
    op.create_table(
        "monitor_incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("scope_id", sa.String(128), nullable=False),
        sa.Column("principal", sa.String(128), nullable=True),
        sa.Column("org", sa.String(128), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("contained", sa.Boolean, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("history", sa.JSON, nullable=False),
    )
    op.create_index("ix_monitor_incidents_scope", "monitor_incidents", ["scope", "scope_id", "state"])
    op.create_table(
        "monitor_throttle_hits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope_id", sa.String(160), nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_monitor_throttle_hits_scope_at", "monitor_throttle_hits", ["scope_id", "at"])


def downgrade() -> None:
    op.drop_table("monitor_throttle_hits")
    op.drop_table("monitor_incidents")
    op.drop_table("monitor_events")
