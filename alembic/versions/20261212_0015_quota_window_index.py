"""the quota slots indexed by window, for the /metrics gauge of the current windows

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-12
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_mass_send_quota_window_start", "mass_send_quota", ["window_start", "target"]
    )


def downgrade() -> None:
    op.drop_index("ix_mass_send_quota_window_start", table_name="mass_send_quota")
