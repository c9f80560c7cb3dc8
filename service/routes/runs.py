"""GET /runs: the served run, what `current` points at, the last reload and the runs on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from service.deps import StateDep
from service.pair import ServedPair
from service.reload import Reloader
from service.schemas import LastReload, RunInfo, RunsReport, ServingRun
from survival.runs import current_target, list_runs

router = APIRouter(tags=["runs"])


# Enough to see what is wrong; a directory of a thousand broken runs should not make a megabyte answer.
MAX_PROBLEMS: Final[int] = 20


def without_paths(text: str, model_dir: Path) -> str:
    """`text` with the server's paths to MODEL_DIR written as MODEL_DIR (a client learns no server path)."""
    for path in sorted({str(model_dir.resolve()), str(model_dir.absolute())}, key=len, reverse=True):
        text = text.replace(path, "MODEL_DIR")
    return text


def runs_report(model_dir: Path, registry: ServedPair | None, reloader: Reloader) -> RunsReport:
    """The report, read from disk now (a few small JSON files per run; bounded)."""
    problems: list[str] = []
    listed = list_runs(model_dir, problems)
    try:
        current: Path | None = current_target(model_dir)
    except OSError:
        current = None  # list_runs has reported it
    last = reloader.last_reload
    serving_id = registry.run_id if registry is not None else None
    return RunsReport(
        serving=ServingRun(run_id=serving_id, since=reloader.pair.serving_since.isoformat())
        if serving_id is not None
        else None,
        current=current.name if current is not None else None,
        last_reload=LastReload(
            at=last.at.isoformat(timespec="seconds"),
            run_id=last.run_id,
            ok=last.ok,
            error=without_paths(last.error, model_dir) if last.error is not None else None,
        )
        if last is not None
        else None,
        runs=[
            RunInfo(
                **run.model_dump(exclude={"data_sha256"}),
                data_sha256=run.data_sha256[:12],
                serving=run.run_id == serving_id,
            )
            for run in listed
        ],
        problems=[without_paths(problem, model_dir) for problem in problems[:MAX_PROBLEMS]],
    )


@router.get("/runs", response_model=RunsReport)
async def runs(state: StateDep) -> RunsReport:
    """The run being served and since when, the run `current` points at, the last reload, and every run on disk."""
    # Reading the runs' metadata touches the disk: off the event loop.
    return await run_in_threadpool(runs_report, state.settings.model_dir, state.pair.current, state.reloader)
