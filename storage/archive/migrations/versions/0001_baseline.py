"""Baseline: the schema of storage/archive/schema.py as first released.

A new database gets the current schema at once (`migrate` runs create_all and
stamps head, as alembic recommends); later revisions upgrade older databases.

Revision ID: 0001
Revises:
"""
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
