"""The generated report: the committed README block and results page are what `python -m training report` writes
from the committed study, and that study's verdicts follow the declared plan (recomputed with statsmodels)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from support.paths import REPO_DIR, SHIPPED_CSV_PATH

from survival.study import StudyReport, load_study
from training.cli import main
from training.data import load_csv
from training.loop import TrainConfig
from training.report import BEGIN, END
from training.report_cli import DEFAULT_PAGE, DEFAULT_README, DEFAULT_STUDY, rendered
from training.study import StudyOptions, run_study, write_study
from training.study_plan import ALPHA, DEFAULT_FOLDS, DEFAULT_SEEDS, POWER, plan_sha256

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def committed() -> StudyReport:
    """The study the README was generated from."""
    study = load_study(REPO_DIR / DEFAULT_STUDY)
    assert study is not None, f"{DEFAULT_STUDY} is not committed"
    return study


def test_readme_and_results_page_are_what_the_report_command_writes() -> None:
    readme, page = rendered(REPO_DIR / DEFAULT_STUDY, REPO_DIR / DEFAULT_README, REPO_DIR / DEFAULT_PAGE)
    assert (REPO_DIR / DEFAULT_README).read_text(encoding="utf-8") == readme, "run `python -m training report`"
    assert (REPO_DIR / DEFAULT_PAGE).read_text(encoding="utf-8") == page, "run `python -m training report`"


def test_the_committed_study_is_the_plans_default_design_with_every_part(committed: StudyReport) -> None:
    s = committed.settings
    assert committed.plan.sha256 == plan_sha256()
    assert (len(s.seeds), s.folds) == (DEFAULT_SEEDS, DEFAULT_FOLDS)
    assert len(s.seeds) >= 30
    assert None not in (committed.sweep, committed.regularization, committed.ics)
    assert all(c.test != "not run" for c in committed.claims)
    assert committed.data.sha256 == load_csv(SHIPPED_CSV_PATH).sha256


def test_the_committed_verdicts_follow_the_plan(committed: StudyReport) -> None:
    claims = committed.claims
    p_holm = multipletests([c.p_value for c in claims], method="holm")[1]
    assert [c.p_holm for c in claims] == pytest.approx(p_holm.tolist())
    for c in claims:
        assert c.p_holm is not None
        assert c.estimate is not None
        significant = c.p_holm < ALPHA
        if c.test == "corrected TOST":
            assert c.verdict == ("holds" if significant else "not shown"), c.id
        elif not significant:
            assert c.verdict == "not shown", c.id
        else:
            assert c.verdict in ("holds", "does not hold"), c.id
    # The primary outcome's p-value, recomputed from the arms with scipy's t distribution.
    bn, plain = committed.arms["batchnorm/raw"].accuracy.values, committed.arms["plain/raw"].accuracy.values
    diffs = np.subtract(bn, plain)
    ratio = committed.data.n_val / committed.data.n_train
    t = diffs.mean() / math.sqrt((1 / diffs.size + ratio) * diffs.var(ddof=1))
    primary = next(c for c in claims if c.id == committed.plan.primary)
    assert primary.p_value == pytest.approx(2 * sps.t.sf(abs(t), diffs.size - 1))


def test_the_committed_power_is_statsmodels_t_test_power_at_the_corrected_variance(committed: StudyReport) -> None:
    p = committed.power
    ratio = committed.data.n_val / committed.data.n_train
    # The corrected test is a t test with J - 1 degrees of freedom on an effective sample of 1 / (1/J + ratio).
    n_eff = 1 / (1 / p.resamples + ratio)
    power = TTestPower().power(effect_size=p.mde_points / p.sd_points, nobs=n_eff, alpha=ALPHA, df=p.resamples - 1)
    assert power == pytest.approx(POWER, abs=1e-6)


def _tiny_study(tmp_path: Path) -> Path:
    study = run_study(load_csv(SHIPPED_CSV_PATH), TrainConfig(epochs=2), StudyOptions(seeds=(0, 1)))
    return write_study(study, tmp_path)


def test_report_writes_the_block_and_the_page_and_check_finds_them_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = _tiny_study(tmp_path)
    readme, page = tmp_path / "README.md", tmp_path / "docs" / "results.md"
    readme.write_text(f"# Title\n\n## Results\n\n{BEGIN}\nhand-typed figures\n{END}\n\n## Next\n")
    args = ["report", "--study", str(study), "--readme", str(readme), "--page", str(page)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0
    text = readme.read_text()
    assert "hand-typed figures" not in text
    assert text.startswith("# Title\n\n## Results\n\n" + BEGIN)
    assert text.endswith(END + "\n\n## Next\n")
    assert "**Primary outcome** (BN gives a higher final validation accuracy, raw inputs)" in text
    assert "Power: with 2 seeds" in text
    assert "](docs/results.md)" in text
    assert page.read_text().startswith("# Results\n")
    assert "| BN gives a higher final validation accuracy | raw | corrected paired t |" in page.read_text()
    capsys.readouterr()
    assert main([*args, "--check"]) == 0
    assert "current" in capsys.readouterr().out


def test_report_refuses_a_readme_without_markers_or_a_study_of_another_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = _tiny_study(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    args = ["report", "--study", str(study), "--readme", str(readme), "--page", str(tmp_path / "r.md")]
    assert main(args) == 1
    assert "no <!-- results:begin -->" in capsys.readouterr().err
    readme.write_text(f"{BEGIN}\n{END}\n")
    data = json.loads(study.read_text())
    data["plan"]["sha256"] = "0" * 64
    study.write_text(json.dumps(data))
    assert main(args) == 1
    assert "rerun the study" in capsys.readouterr().err
    assert not (tmp_path / "r.md").exists()
