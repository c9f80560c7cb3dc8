"""`python -m training report`: regenerate the README's Results block and the results page from a study file."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from survival.study import load_study
from training.report import readme_block, replace_block
from training.report_page import results_page
from training.study_plan import PLAN_VERSION, plan_sha256

DEFAULT_STUDY = Path("results/study.json")
DEFAULT_README = Path("README.md")
DEFAULT_PAGE = Path("docs/results.md")


def report_parser() -> argparse.ArgumentParser:
    """The parser of the `report` command."""
    parser = argparse.ArgumentParser(
        prog="python -m training report",
        description="Write the README's Results block (between its markers) and the results page from a study "
        "file. With no arguments: the committed results/study.json into README.md and docs/results.md.",
    )
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="study file (default: %(default)s)")
    parser.add_argument("--readme", type=Path, default=DEFAULT_README, help="default: %(default)s")
    parser.add_argument("--page", type=Path, default=DEFAULT_PAGE, help="default: %(default)s")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if either file is stale")
    return parser


def rendered(study_path: Path, readme_path: Path, page_path: Path) -> tuple[str, str]:
    """(the README with its block regenerated, the results page) from the study at `study_path`."""
    study = load_study(study_path)
    if study is None:
        raise ValueError(f"{study_path}: no study file (run `python -m training study --all --out DIR` first)")
    if study.plan.sha256 != plan_sha256():
        raise ValueError(
            f"{study_path} was run under plan {study.plan.version} ({study.plan.sha256[:12]}), not the declared "
            f"plan {PLAN_VERSION} ({plan_sha256()[:12]}): rerun the study before reporting it"
        )
    readme = readme_path.read_text(encoding="utf-8")
    # Links are written relative to the README (the repository root).
    root = readme_path.resolve().parent
    study_rel, page_rel = (_relative(p, root) for p in (study_path, page_path))
    block = readme_block(study, study_rel, page_rel)
    return replace_block(readme, block), results_page(study, study_rel)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def report_command(argv: Sequence[str]) -> int:
    """Regenerate (or, with --check, compare) both files."""
    args = report_parser().parse_args(argv)
    readme, page = rendered(args.study, args.readme, args.page)
    targets = ((args.readme, readme), (args.page, page))
    if args.check:
        stale = [str(p) for p, text in targets if not p.is_file() or p.read_text(encoding="utf-8") != text]
        if stale:
            print(f"stale: {', '.join(stale)} (run `python -m training report`)")
            return 1
        print("the report is current")
        return 0
    for path, text in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0
