"""a member's personal data can be erased (yihu members forget)

Revision ID: 0003_ops
Revises: 0002
Create Date: 2026-12-07 21:30:00

``member.erased_at`` marks a forgotten member: the key stays (incidents keep counting), the name,
phone and Telegram link are gone, and a later roster import keeps it erased.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003_ops"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
