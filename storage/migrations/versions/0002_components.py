"""The component library: components saved to be offered in every workflow's palette.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('components',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('shared', sa.Boolean(), nullable=False),
    sa.Column('description', sa.String(length=4000), nullable=False),
    sa.Column('json', sa.Text(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.Column('updated', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_components_name', 'components', ['name'])
    op.create_index('ix_components_owner', 'components', ['owner'])


def downgrade() -> None:
    op.drop_index('ix_components_owner', table_name='components')
    op.drop_index('ix_components_name', table_name='components')
    op.drop_table('components')
