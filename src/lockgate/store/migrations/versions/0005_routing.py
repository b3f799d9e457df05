"""routing tables: deployments an upstream withdrew (shared by replicas and the CLI)

Revision ID: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "routing_deployment_state",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("deployment", sa.String(512), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("upstream_status", sa.Integer, nullable=True),
        sa.Column("changed_at", TS, nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("incidents", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("routing_deployment_state")
