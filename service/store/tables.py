"""The store's tables (SQLAlchemy Core): the schema the migrations in service/store/migrations/ build."""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

metadata = sa.MetaData()
# The schema version these tables are: Alembic's head (service/store/migrations/versions/; a test holds them equal),
# so that a process finding the database at it never needs to import Alembic.
SCHEMA_REVISION: Final[str] = "0001"

# A request id is at most 128 characters (service/note.py); a prediction's id is "<request id>/<row>".
REQUEST_ID_LENGTH: Final[int] = 128
PASSENGER_ID_LENGTH: Final[int] = 64

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("request_id", sa.String(REQUEST_ID_LENGTH), primary_key=True),
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
    sa.Column("passenger_id", sa.String(PASSENGER_ID_LENGTH), nullable=True),
    sa.Index("ix_predictions_at", "at"),
    sa.Index("ix_predictions_passenger_id", "passenger_id"),
)

# An outcome, with copies of what the comparison reads of its prediction (both are written once and never
# change): GET /comparison then reads this table alone, in time order, instead of joining every labelled row.
outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("request_id", sa.String(REQUEST_ID_LENGTH), primary_key=True),
    sa.Column("row_index", sa.Integer, primary_key=True),
    sa.Column("survived", sa.SmallInteger, nullable=False),
    sa.Column("labelled_at", sa.Float, nullable=False),
    sa.Column("predicted_at", sa.Float, nullable=False),
    sa.Column("p_batchnorm", sa.Float, nullable=False),
    sa.Column("p_plain", sa.Float, nullable=False),
    sa.Column("answered", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Index("ix_outcomes_predicted_at", "predicted_at"),
)

# The weights each run served (a prediction names its run; the versions are the same for all of a run's rows).
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("version_batchnorm", sa.String(64), nullable=False),
    sa.Column("version_plain", sa.String(64), nullable=False),
    sa.Column("first_served_at", sa.Float, nullable=False),
)

# Settings every worker and replica follows at run time (the champion).
control = sa.Table(
    "control",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
