"""Settings every worker and replica follows at run time, kept in the store's control table (the champion)."""

from __future__ import annotations

import time
from typing import Final

import sqlalchemy as sa

from service.store.tables import control

CHAMPION: Final[str] = "answer"


def read_setting(engine: sa.Engine, name: str) -> str | None:
    """A control setting's value, or None when it was never set."""
    with engine.connect() as connection:
        value: str | None = connection.execute(
            sa.select(control.c.value).where(control.c.name == name)
        ).scalar_one_or_none()
    return value


def write_setting(engine: sa.Engine, name: str, value: str) -> None:
    """Set a control setting (committed before this returns)."""
    with engine.begin() as connection:
        changed = connection.execute(
            control.update().where(control.c.name == name).values(value=value, updated_at=time.time())
        ).rowcount
        if not changed:
            connection.execute(control.insert().values(name=name, value=value, updated_at=time.time()))
