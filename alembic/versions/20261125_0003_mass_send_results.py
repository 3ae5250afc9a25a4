"""mass send results

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mass_send_results",
        sa.Column(
            "outbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("msgid", sa.String(length=200), nullable=False),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("wecom_status", sa.Integer(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("checked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('awaiting', 'sent', 'failed')", name=op.f("ck_mass_send_results_status")
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_mass_send_results_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("outbox_id", name=op.f("pk_mass_send_results")),
    )
    with op.batch_alter_table("mass_send_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mass_send_results_status_msgid", ["status", "msgid"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mass_send_results", schema=None) as batch_op:
        batch_op.drop_index("ix_mass_send_results_status_msgid")

    op.drop_table("mass_send_results")
