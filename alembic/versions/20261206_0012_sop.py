"""群SOP: scripts say how they reach customer groups (group_delivery), groups name their
assistant, outbox rows wait for staff (awaiting_staff, skipped), SOP tasks and settings, and a
merged mass send has a result per target

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_OUTBOX = "status IN ('pending', 'claimed', 'sending', 'sent', 'dead', 'cancelled')"
_NEW_OUTBOX = (
    "status IN ('pending', 'claimed', 'sending', 'sent', 'dead', 'cancelled', "
    "'awaiting_staff', 'skipped')"
)
_DELIVERY = "group_delivery IN ('mass_send', 'sop', 'auto')"
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _outbox_status(check: str) -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_outbox_status"), type_="check")
        batch_op.create_check_constraint("status", check)


def _result_key(columns: list[str]) -> None:
    with op.batch_alter_table("mass_send_results", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("pk_mass_send_results"), type_="primary")
        batch_op.create_primary_key(op.f("pk_mass_send_results"), columns)


def upgrade() -> None:
    for table in ("scripts", "script_versions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "group_delivery", sa.String(length=16), server_default="auto", nullable=False
                )
            )
            batch_op.create_check_constraint("group_delivery", _DELIVERY)
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assistant_userid", sa.String(length=128), nullable=True))
    _outbox_status(_NEW_OUTBOX)
    _result_key(["outbox_id", "target"])
    op.create_table(
        "sop_tasks",
        sa.Column("outbox_id", _ID, nullable=False),
        sa.Column("staff_userid", sa.String(length=128), nullable=False),
        sa.Column("chat_kind", sa.String(length=8), nullable=False),
        sa.Column("chat", sa.String(length=200), nullable=False),
        sa.Column("cohort_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("due_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("notified_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=128), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "chat_kind IN ('group', 'single')", name=op.f("ck_sop_tasks_chat_kind")
        ),
        sa.CheckConstraint(
            "outcome IN ('on_time', 'late', 'skipped')", name=op.f("ck_sop_tasks_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["cohort_id"],
            ["cohorts.id"],
            name=op.f("fk_sop_tasks_cohort_id_cohorts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_sop_tasks_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("outbox_id", name=op.f("pk_sop_tasks")),
    )
    with op.batch_alter_table("sop_tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sop_tasks_cohort_id_staff_userid", ["cohort_id", "staff_userid"], unique=False
        )
        batch_op.create_index("ix_sop_tasks_outcome_due_at", ["outcome", "due_at"], unique=False)
    op.create_table(
        "sop_settings",
        sa.Column("cohort_id", sa.Integer(), nullable=False),
        sa.Column("remind_after_minutes", sa.Integer(), nullable=False),
        sa.Column("escalate_after_minutes", sa.Integer(), nullable=False),
        sa.Column("operator_userids", sa.JSON(), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_id"],
            ["cohorts.id"],
            name=op.f("fk_sop_settings_cohort_id_cohorts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("cohort_id", name=op.f("pk_sop_settings")),
    )


def downgrade() -> None:
    op.drop_table("sop_settings")
    with op.batch_alter_table("sop_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_sop_tasks_outcome_due_at")
        batch_op.drop_index("ix_sop_tasks_cohort_id_staff_userid")
    op.drop_table("sop_tasks")
    # A merged task's extra targets have no place in the old shape: keep one per task.
    op.execute(
        "DELETE FROM mass_send_results WHERE target NOT IN "
        "(SELECT MIN(r.target) FROM mass_send_results r "
        "WHERE r.outbox_id = mass_send_results.outbox_id)"
    )
    _result_key(["outbox_id"])
    op.execute(
        "UPDATE outbox SET status = 'cancelled' WHERE status IN ('awaiting_staff', 'skipped')"
    )
    _outbox_status(_OLD_OUTBOX)
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_column("assistant_userid")
    for table in ("script_versions", "scripts"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_group_delivery"), type_="check")
            batch_op.drop_column("group_delivery")
