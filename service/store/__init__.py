"""The prediction store: every served prediction, the outcomes fed back, and the champion, in one database.

SQLAlchemy Core over SQLite (one machine; the default) or PostgreSQL (several replicas), the schema versioned by
Alembic. Predictions are queued by the data plane and written in batches by one thread per worker, so a request
never waits for the database (service/store/writer.py).
"""

from typing import Final

# STORE_URL's value that turns recording off.
OFF: Final[str] = "none"


def recording(store_url: str) -> bool:
    """Whether a STORE_URL records predictions (anything but `none`); answered without importing SQLAlchemy."""
    return store_url.strip().lower() != OFF


class StoreUnavailableError(Exception):
    """The database refused or did not answer an operation just now (the message: the driver's first line)."""
