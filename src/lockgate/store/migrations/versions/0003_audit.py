"""audit tables: the hash-chained trail, its signed checkpoints, encrypted content with a retention window

Revision ID: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # One row, locked by every appender: serialises the chain across threads, processes and replicas.
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("checkpointed_at", sa.Float, nullable=False),
    )
    op.execute("INSERT INTO audit_head (id, size, hash, checkpointed_at) VALUES (1, 0, '" + "0" * 64 + "', 0)")
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True, index=True),
        sa.Column("body", sa.Text, nullable=False),  # canonical JSON, exactly the bytes that were hashed
        sa.Column("prev", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_content",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("created_at", TS, nullable=False, index=True),
        sa.Column("blob", sa.LargeBinary, nullable=False),  # nonce || AES-GCM ciphertext
    )


def downgrade() -> None:
    for t in ("audit_content", "audit_checkpoints", "audit_records", "audit_head"):
        op.drop_table(t)
