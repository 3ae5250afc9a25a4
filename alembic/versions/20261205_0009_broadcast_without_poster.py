"""a 喜报 may go out without its poster (no CJK font): broadcasts.poster nullable, and why

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("poster_missing", sa.Text(), nullable=True))
        batch_op.alter_column("poster", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    # A broadcast that went out as text has no poster to keep: an empty one stands in.
    op.execute(
        sa.text("UPDATE broadcasts SET poster = :empty WHERE poster IS NULL").bindparams(
            sa.bindparam("empty", b"", type_=sa.LargeBinary())
        )
    )
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.alter_column("poster", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("poster_missing")
