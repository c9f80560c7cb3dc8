"""The prediction store: predictions, outcomes, runs and control.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the four tables and their indexes."""
    op.create_table(
        "predictions",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row_index", sa.Integer, primary_key=True),
        sa.Column("at", sa.Float, nullable=False, comment="When it was answered (Unix seconds)."),
        sa.Column("pclass", sa.SmallInteger, nullable=False),
        sa.Column("fare", sa.Float, nullable=True, comment="As received: NULL when the request had none."),
        sa.Column("age", sa.Float, nullable=True, comment="As received: NULL when the request had none."),
        sa.Column("fare_filled", sa.Float, nullable=False, comment="What the models were given."),
        sa.Column("age_filled", sa.Float, nullable=False, comment="What the models were given."),
        sa.Column("p_batchnorm", sa.Float, nullable=False),
        sa.Column("p_plain", sa.Float, nullable=False),
        sa.Column("answered", sa.String(16), nullable=False, comment="both, batchnorm or plain."),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("passenger_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_predictions_at", "predictions", ["at"])
    op.create_index("ix_predictions_passenger_id", "predictions", ["passenger_id"])
    op.create_table(
        "outcomes",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row_index", sa.Integer, primary_key=True),
        sa.Column("survived", sa.SmallInteger, nullable=False),
        sa.Column("labelled_at", sa.Float, nullable=False),
        sa.Column("predicted_at", sa.Float, nullable=False),
        sa.Column("p_batchnorm", sa.Float, nullable=False),
        sa.Column("p_plain", sa.Float, nullable=False),
        sa.Column("answered", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_outcomes_predicted_at", "outcomes", ["predicted_at"])
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("version_batchnorm", sa.String(64), nullable=False),
        sa.Column("version_plain", sa.String(64), nullable=False),
        sa.Column("first_served_at", sa.Float, nullable=False),
    )
    op.create_table(
        "control",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    """Drop the four tables."""
    for table in ("control", "runs", "outcomes", "predictions"):
        op.drop_table(table)
