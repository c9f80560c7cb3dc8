"""The README's example answer is what a fresh default run really answers (tools/gen_readme_example.py).

The generator trains the default run as `make run` does, serves it with `python -m service` and sends the
documented requests; the committed blocks in README.md and docs/api.md must be those answers (the run id, a
time stamp, aside; on another CPU the last digits may differ, as the README says).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.tools import load_tool

gen = load_tool("gen_readme_example")


@pytest.fixture(scope="module")
def real_blocks() -> dict[str, str]:
    """The documented requests' answers from a freshly trained default run."""
    blocks: dict[str, str] = gen.blocks(gen.real_answers())
    return blocks


@pytest.mark.parametrize(("name", "path"), [(n, p) for n, paths in gen.TARGETS.items() for p in paths])
@pytest.mark.system
def test_the_committed_example_is_a_real_answer_of_the_default_run(
    real_blocks: dict[str, str], name: str, path: Path
) -> None:
    committed = gen.between(path.read_text(encoding="utf-8"), name)
    assert committed.splitlines()[:2] == real_blocks[name].splitlines()[:2], "the command differs"
    problems = gen.differences(name, gen.answer_in(committed), gen.answer_in(real_blocks[name]))
    assert not problems, f"{path}: {problems} (regenerate: python tools/gen_readme_example.py)"


@pytest.mark.system
def test_a_changed_answer_is_caught(real_blocks: dict[str, str]) -> None:
    real = gen.answer_in(real_blocks["example"])
    assert gen.differences("example", real, real) == []
    assert gen.differences("example", real.replace("false", "true", 1), real)
    assert gen.differences("example", real.replace('"version": "', '"version": "0', 1), real)
    csv = gen.answer_in(real_blocks["csv-example"])
    assert gen.differences("csv-example", csv.replace("892,", "892,1", 1), csv)


def test_the_readme_and_the_api_page_show_the_same_example() -> None:
    readme = gen.between(gen.README.read_text(encoding="utf-8"), "example")
    assert readme == gen.between(gen.API_PAGE.read_text(encoding="utf-8"), "example")
