"""The Prometheus multiprocess directory: prepared before the workers start, removed after they stop."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.telemetry import MULTIPROCESS_ENV


def clear_values(directory: Path) -> None:
    """Delete the value files a previous run left (they would be added to this run's totals)."""
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


@contextmanager
def metrics_directory(workers: int) -> Iterator[Path | None]:
    """With several workers (or PROMETHEUS_MULTIPROC_DIR set): an empty shared directory for the block.

    A directory named by PROMETHEUS_MULTIPROC_DIR (a tmpfs in a container) is emptied before and after;
    otherwise a private temporary one is made and removed. The variable is set for the workers.
    """
    configured = os.environ.get(MULTIPROCESS_ENV)
    if workers == 1 and not configured:
        yield None
        return
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        clear_values(directory)
    else:
        directory = Path(tempfile.mkdtemp(prefix="titanic-metrics-"))
        os.environ[MULTIPROCESS_ENV] = str(directory)
    try:
        yield directory
    finally:
        if configured:
            clear_values(directory)
        else:
            shutil.rmtree(directory, ignore_errors=True)
            os.environ.pop(MULTIPROCESS_ENV, None)
