"""Initial schema: workflows, versions, validations, runs, node runs, events, metric samples.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('runs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('workflow_id', sa.String(length=64), nullable=True),
    sa.Column('workflow_name', sa.String(length=500), nullable=False),
    sa.Column('workflow_json', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('policy', sa.String(length=100), nullable=False),
    sa.Column('backend', sa.String(length=100), nullable=False),
    sa.Column('capacity', sa.JSON(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('predicted_makespan_s', sa.Float(), nullable=True),
    sa.Column('created', sa.Float(), nullable=False),
    sa.Column('started', sa.Float(), nullable=True),
    sa.Column('finished', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('resumed_from', sa.String(length=64), nullable=True),
    sa.Column('user', sa.String(length=200), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_runs_created', 'runs', ['created'])
    op.create_index('ix_runs_status', 'runs', ['status'])
    op.create_index('ix_runs_user', 'runs', ['user'])
    op.create_index('ix_runs_workflow_id', 'runs', ['workflow_id'])
    op.create_index('ix_runs_workflow_name', 'runs', ['workflow_name'])

    op.create_table('workflows',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('created', sa.Float(), nullable=False),
    sa.Column('updated', sa.Float(), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_workflows_deleted', 'workflows', ['deleted'])
    op.create_index('ix_workflows_name', 'workflows', ['name'])
    op.create_index('ix_workflows_owner', 'workflows', ['owner'])

    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('node_id', sa.String(length=200), nullable=True),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('time', sa.Float(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_events_run_id_id', 'events', ['run_id', 'id'])

    op.create_table('metric_samples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('time', sa.Float(), nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=False),
    sa.Column('rss_mb', sa.Float(), nullable=False),
    sa.Column('per_node', sa.JSON(), nullable=False),
    sa.Column('gpu', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_metric_samples_run_id_time', 'metric_samples', ['run_id', 'time'])

    op.create_table('node_runs',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('node_id', sa.String(length=200), nullable=False),
    sa.Column('agent', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('device', sa.String(length=64), nullable=True),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('queued_at', sa.Float(), nullable=True),
    sa.Column('started_at', sa.Float(), nullable=True),
    sa.Column('finished_at', sa.Float(), nullable=True),
    sa.Column('wait_inputs_s', sa.Float(), nullable=True),
    sa.Column('wait_resource_s', sa.Float(), nullable=True),
    sa.Column('wait_resource', sa.JSON(), nullable=False),
    sa.Column('wall_s', sa.Float(), nullable=True),
    sa.Column('cpu_s', sa.Float(), nullable=True),
    sa.Column('peak_rss_mb', sa.Float(), nullable=True),
    sa.Column('peak_gpu_mb', sa.Float(), nullable=True),
    sa.Column('items', sa.Integer(), nullable=True),
    sa.Column('error_type', sa.String(length=200), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('traceback', sa.Text(), nullable=True),
    sa.Column('cached', sa.Boolean(), nullable=False),
    sa.Column('output_summary', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'node_id')
    )
    op.create_index('ix_node_runs_status', 'node_runs', ['status'])

    op.create_table('validations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workflow_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('issues', sa.JSON(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_validations_created', 'validations', ['created'])
    op.create_index('ix_validations_workflow_id', 'validations', ['workflow_id'])

    op.create_table('workflow_versions',
    sa.Column('workflow_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('json', sa.Text(), nullable=False),
    sa.Column('message', sa.String(length=2000), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workflow_id', 'version')
    )


def downgrade() -> None:
    op.drop_table('workflow_versions')
    op.drop_index('ix_validations_workflow_id', table_name='validations')
    op.drop_index('ix_validations_created', table_name='validations')

    op.drop_table('validations')
    op.drop_index('ix_node_runs_status', table_name='node_runs')

    op.drop_table('node_runs')
    op.drop_index('ix_metric_samples_run_id_time', table_name='metric_samples')

    op.drop_table('metric_samples')
    op.drop_index('ix_events_run_id_id', table_name='events')

    op.drop_table('events')
    op.drop_index('ix_workflows_owner', table_name='workflows')
    op.drop_index('ix_workflows_name', table_name='workflows')
    op.drop_index('ix_workflows_deleted', table_name='workflows')

    op.drop_table('workflows')
    op.drop_index('ix_runs_workflow_name', table_name='runs')
    op.drop_index('ix_runs_workflow_id', table_name='runs')
    op.drop_index('ix_runs_user', table_name='runs')
    op.drop_index('ix_runs_status', table_name='runs')
    op.drop_index('ix_runs_created', table_name='runs')

    op.drop_table('runs')
