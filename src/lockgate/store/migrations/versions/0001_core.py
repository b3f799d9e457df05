"""core: principals, api keys, revision counter

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("revision", sa.Column("id", sa.Integer, primary_key=True), sa.Column("value", sa.Integer, nullable=False))
    op.execute("INSERT INTO revision (id, value) VALUES (1, 0)")
    op.create_table(
        "principals",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("org", sa.String(128), nullable=True, index=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("principal_id", sa.String(128), sa.ForeignKey("principals.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("note", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("principals")
    op.drop_table("revision")
