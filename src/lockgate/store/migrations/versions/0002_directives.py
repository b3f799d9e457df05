"""directives: signed, hash-chained versions

Revision ID: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "directive_versions",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("directive_id", sa.String(128), nullable=False, index=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("applied_at", TS, nullable=False),
        sa.Column("applied_by", sa.String(256), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("directive_versions")
