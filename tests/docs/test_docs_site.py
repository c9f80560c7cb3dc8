"""The docs site builds cleanly and the short README keeps its promises.

`mkdocs build --strict` fails on a broken link, a missing anchor or a page outside the navigation; the README
stays short, links only to pages that exist, and keeps the generated Results block's markers.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import REPO_DIR, need

README = REPO_DIR / "README.md"
DOCS = REPO_DIR / "docs"
README_MAX_LINES = 150


@pytest.mark.system
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    need(importlib.util.find_spec("mkdocs") is not None, "mkdocs is not installed (the `docs` extra: make install)")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    for page in DOCS.glob("*.md"):
        built = tmp_path / "site" / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"{page.name} was not built"
    configuration = (tmp_path / "site" / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "MAX_BATCH_SIZE" in configuration


def test_the_readme_is_short_and_links_only_to_what_exists() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    targets = re.findall(r"\]\(((?!https?:)[^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets, "the README links to no page"
    for target in targets:
        assert (REPO_DIR / target).exists(), f"README links to {target}, which does not exist"
    for page in ("getting-started", "api", "configuration", "deployment", "architecture", "performance"):
        assert f"(docs/{page}.md" in text, f"README does not link to docs/{page}.md"


def test_the_readme_keeps_one_generated_results_block() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count("<!-- results:begin -->") == 1
    assert text.count("<!-- results:end -->") == 1
    results = text.split("## Results\n", 1)[1]
    assert results.lstrip().startswith("<!-- results:begin -->")
    assert text.index("<!-- results:begin -->") < text.index("<!-- results:end -->")


def test_the_readme_says_the_two_commands_and_docker() -> None:
    text = README.read_text(encoding="utf-8")
    for command in ("make run", "make test", "docker compose up"):
        assert f"\n{command}" in text, command
    makefile = (REPO_DIR / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^run: .*##", makefile, re.MULTILINE)
    assert re.search(r"^test: .*##", makefile, re.MULTILINE)


@pytest.mark.system
def test_the_make_help_shown_in_getting_started_is_makes_own() -> None:
    need(shutil.which("make") is not None, "make is not installed")
    shown = (DOCS / "getting-started.md").read_text(encoding="utf-8").split("$ make help\n", 1)[1].split("```")[0]
    real = subprocess.run(["make", "-s", "help"], cwd=REPO_DIR, capture_output=True, text=True, timeout=60, check=True)
    assert shown == real.stdout


@pytest.mark.system
def test_every_trainer_flag_the_docs_list_is_one_the_trainer_takes() -> None:
    page = (DOCS / "models-and-runs.md").read_text(encoding="utf-8")
    listed = {
        flag for row in re.findall(r"^\| (`--[^|]+)\|", page, re.MULTILINE) for flag in re.findall(r"--[a-z-]+", row)
    }
    assert {"--data", "--epochs", "--if-missing", "--seeds", "--sweep"} <= listed
    helps = []
    for command in ([], ["study"]):
        done = subprocess.run(
            [sys.executable, "-m", "training", *command, "--help"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        helps.append(done.stdout)
    taken = set(re.findall(r"--[a-z-]+", "\n".join(helps)))
    assert listed <= taken, f"documented flags the trainer does not take: {sorted(listed - taken)}"


def test_every_file_the_docs_name_exists() -> None:
    pattern = (
        r"\b((?:service|survival|training|tests|bench|tools|deploy|data)/[\w./-]+\.(?:py|ya?ml|conf|csv|md|json|js))"
    )
    missing = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for path in sorted(set(re.findall(pattern, page.read_text(encoding="utf-8")))):
            if not (REPO_DIR / path).exists():
                missing.append(f"{page.relative_to(REPO_DIR)}: {path}")
    assert not missing, "the docs name files that do not exist (moved?):\n" + "\n".join(missing)
