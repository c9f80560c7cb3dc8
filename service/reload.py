"""Hot swap: watch what ``MODEL_DIR/current`` points at, load a new run off the event loop, swap it in at once.

One code path for the poller and an explicit reload (`POST /admin/reload`): `Reloader.reload_now`. A new
run is loaded and verified with the start-up checks, warmed up and only then published by one reference
assignment (``PairHolder.publish``, service/state.py); a request reads that reference once, so each answer comes
from one run. A bad run never replaces a good one: it is logged in one line, counted, shown by GET /runs, and
tried again only when ``current`` changes again (or on an explicit reload).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from service.pair import ServedPair
from service.state import PairHolder
from service.telemetry import Telemetry
from survival.checkpoint import CURRENT_LINK, CheckpointError, current_run_dir
from survival.variants import VARIANTS

logger = logging.getLogger("service")
# One passenger through both models before a new pair is published, so its first request is not slower.
WARM_UP_ROW = np.array([[3.0, 7.25, 22.0]])


@dataclass(frozen=True)
class ReloadOutcome:
    """What one reload attempt did: the run served before and after, whether it swapped, and why not."""

    previous_run_id: str | None
    run_id: str | None
    changed: bool
    error: str | None


@dataclass(frozen=True)
class ReloadRecord:
    """The last reload attempt, as GET /runs shows it."""

    at: datetime
    run_id: str | None
    ok: bool
    error: str | None


def current_target(model_dir: Path) -> str:
    """What ``current`` points at, as a comparable string (one readlink; a missing link reads "<reason>")."""
    try:
        return os.readlink(model_dir / CURRENT_LINK)
    except OSError as exc:
        return f"<{exc.strerror}>"


class Reloader:
    """Loads new runs for the pair holder: the poller and explicit reloads both go through it."""

    def __init__(self, pair: PairHolder, model_dir: Path, telemetry: Telemetry) -> None:
        self.pair = pair
        self.model_dir = model_dir
        self.telemetry = telemetry
        self.last_reload: ReloadRecord | None = None
        self._lock = asyncio.Lock()
        # The last target the poller acted on (success or failure): it acts again only when this changes.
        self._seen: str | None = None

    def start_serving(self, pair: ServedPair) -> None:
        """Publish the pair loaded at start-up and remember what ``current`` points at, if that is it."""
        target = current_target(self.model_dir)
        # Had `current` moved on since the start-up load, the first poll must see a change.
        self._seen = target if (self.model_dir / target).resolve() == pair.run_dir else None
        self.pair.publish(pair)

    async def reload_now(self) -> ReloadOutcome:
        """Load the run ``current`` points at if it is not the one served; swap on success, keep the old on failure."""
        return await self._reload(force=True)

    async def poll_once(self) -> ReloadOutcome | None:
        """One poll: a reload only when the link's target changed since the last attempt (None when it did not)."""
        target = await asyncio.to_thread(current_target, self.model_dir)
        if target == self._seen:
            return None
        return await self._reload(force=False)

    async def poll_forever(self, interval_s: float) -> None:
        """Poll every `interval_s` seconds until cancelled; nothing here ever ends the loop but cancellation."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.poll_once()
            except Exception:  # a bug must not silently end hot swapping
                logger.exception("model reload poller: unexpected error (will poll again)")

    async def _reload(self, *, force: bool) -> ReloadOutcome:
        async with self._lock:
            target = await asyncio.to_thread(current_target, self.model_dir)
            if not force and target == self._seen:
                return self._outcome(None)
            self._seen = target
            previous = self.pair.current
            previous_id = previous.run_id if previous is not None else None
            try:
                run_dir = await asyncio.to_thread(current_run_dir, self.model_dir)
                if previous is not None and previous.run_dir == run_dir:
                    return self._outcome(None)
                pair = await asyncio.to_thread(load_and_warm, self.model_dir, run_dir)
            except (CheckpointError, OSError, ValueError) as exc:  # a file unreadable mid-way, not only a bad one
                return self._failed(previous_id, None if target.startswith("<") else Path(target).name, str(exc))
            self.pair.publish(pair)
            self.telemetry.reloads.labels("success").inc()
            self.last_reload = ReloadRecord(datetime.now(UTC), pair.run_id, True, None)
            logger.info("now serving run %s (was %s)", pair.run_id, previous_id)
            return ReloadOutcome(previous_id, pair.run_id, changed=True, error=None)

    def _outcome(self, error: str | None) -> ReloadOutcome:
        current = self.pair.current
        run_id = current.run_id if current is not None else None
        return ReloadOutcome(run_id, run_id, changed=False, error=error)

    def _failed(self, previous_id: str | None, target_run: str | None, error: str) -> ReloadOutcome:
        self.telemetry.reloads.labels("failure").inc()
        self.last_reload = ReloadRecord(datetime.now(UTC), target_run, False, error)
        logger.error("model reload failed, still serving run %s: %s", previous_id, error)
        return ReloadOutcome(previous_id, previous_id, changed=False, error=error)


def load_and_warm(model_dir: Path, run_dir: Path) -> ServedPair:
    """Load and verify one run's served pair, and run one prediction through it (in a worker thread)."""
    pair = ServedPair.load_run(model_dir, run_dir)
    pair.predict(WARM_UP_ROW, VARIANTS)
    return pair


@contextlib.asynccontextmanager
async def polling(reloader: Reloader, interval_s: float) -> AsyncIterator[None]:
    """Run the poller for the duration of the block (not at all when `interval_s` is 0)."""
    task = asyncio.create_task(reloader.poll_forever(interval_s)) if interval_s > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
