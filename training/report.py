"""The study's written report, generated from study.json: the README's Results block and its shared pieces.

Every figure and verdict sentence here is computed from the study file; the only fixed text describes the method.
`training.report_page` builds the longer results page from the same pieces.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Final

from survival.study import ArmSummary, Claim, Stat, StudyReport
from training.study_claims import ORIGINAL_ACCURACY
from training.study_summary import power_sentence

BEGIN: Final[str] = "<!-- results:begin -->"
END: Final[str] = "<!-- results:end -->"
VERDICT_MARK: Final[dict[str, str]] = {
    "holds": "**holds**",
    "does not hold": "**does not hold**",
    "not shown": "not shown",
}
POINT_IDS: Final[frozenset[str]] = frozenset(
    {"accuracy", "steadier_accuracy", "peak_fall", "more_than_scaling", "same_as_scaling", "adds_nothing",
     "higher_lr", "fewer_collapses", "no_regularizer_needed", "longer_helps_bn"}
)  # fmt: skip


def wrap(text: str) -> str:
    """A prose paragraph wrapped at the README's 120 columns (words and hyphenated names kept whole)."""
    return textwrap.fill(text, width=120, break_long_words=False, break_on_hyphens=False)


def pct(value: Stat | None) -> str:
    """'71.6 % ± 1.9' (mean ± std over resamples)."""
    return "n/a" if value is None else f"{100 * value.mean:.1f} % ± {100 * value.std:.1f}"


def num(value: Stat | None, digits: int = 3) -> str:
    """'0.587 ± 0.021'."""
    return "n/a" if value is None else f"{value.mean:.{digits}f} ± {value.std:.{digits}f}"


def pvalue(p: float | None) -> str:
    """A p-value as a reader wants it: three significant digits, '< 0.001' below that."""
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (pipes in cells escaped)."""
    cells = [[c.replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def design(study: StudyReport) -> str:
    """'30 seeds x repeated stratified 10-fold (300 resamples per arm), 200 epochs, adam lr 0.001, batch 32'."""
    s, d = study.settings, study.data
    resampling = f"repeated stratified {s.folds}-fold" if s.folds else "a stratified hold-out split per seed"
    return (
        f"{len(s.seeds)} seeds x {resampling} ({s.resamples} resamples per arm), {s.epochs} epochs, "
        f"{s.optimizer} lr {s.learning_rate:g}, batch {s.batch_size}, hidden {'-'.join(map(str, s.hidden))}, on "
        f"`{d.file_name}` (sha256 `{d.sha256[:12]}`, {d.n_train} training / {d.n_val} validation rows per resample)"
    )


def two_by_two(study: StudyReport) -> str:
    """Final validation accuracy of the 2 x 2 with the original run and the baselines."""
    scalings = study.settings.scalings
    head = ["final validation accuracy", "original single run", *(f"{sc} inputs" for sc in scalings)]
    rows = []
    for variant, label in (("batchnorm", "with BN"), ("plain", "without BN")):
        arms: list[ArmSummary] = [study.arms[f"{variant}/{sc}"] for sc in scalings]
        rows.append([label, f"{100 * ORIGINAL_ACCURACY[variant]:.0f} %", *(pct(a.accuracy) for a in arms)])
    rows.append(["logistic regression (same inputs)", "", *(pct(study.baselines.logistic.get(sc)) for sc in scalings)])
    rows.append(["majority class", "", *(pct(study.baselines.majority) for _ in scalings)])
    return table(head, rows)


def estimate(claim: Claim) -> str:
    """The claim's estimate and interval in its unit ('+2.5 points [-0.5, +5.5]')."""
    if claim.estimate is None:
        return "—"
    base = claim.id.split("/")[0]
    scale, unit, fmt = (100.0, " points", "+.1f") if base in POINT_IDS else (1.0, "", "+.3g")
    text = f"{scale * claim.estimate:{fmt}}{unit}"
    if claim.ci95 is not None:
        text += f" [{scale * claim.ci95[0]:{fmt}}, {scale * claim.ci95[1]:{fmt}}]"
    return text


def claims_table(study: StudyReport) -> str:
    """Every claim: inputs, test, estimate with its corrected 95 % interval, raw and Holm p, verdict."""
    head = ["claim", "inputs", "test", "estimate [corrected 95 % CI]", "p", "Holm p", "verdict"]
    rows = [
        [c.claim, c.scaling, c.test, estimate(c), pvalue(c.p_value), pvalue(c.p_holm), VERDICT_MARK[c.verdict]]
        for c in study.claims
    ]
    return table(head, rows)


def rules(study: StudyReport) -> str:
    """The verdict rules, with the plan's numbers."""
    p = study.plan
    return (
        f"Verdicts follow the declared plan (`training/study_plan.py`, version {p.version}, sha256 "
        f"`{p.sha256[:12]}`): a difference claim **holds** when its Holm-adjusted p (over the {p.family_size} "
        f"claims tested) is below {p.alpha:g} in the claimed direction and **does not hold** when it is below "
        f"{p.alpha:g} the other way; a claim of no effect holds only when two one-sided tests (TOST) show the "
        f"difference inside ±{100 * p.equivalence_margin:g} points; anything else is *not shown*. Intervals and t "
        "tests are Nadeau-Bengio corrected for the overlap of resampled training sets; collapse counts use an exact "
        "McNemar test on the paired runs."
    )


def verdict_summary(study: StudyReport) -> str:
    """Which claims hold and which do not (by scaling), and how many are not shown, under Holm."""
    parts = []
    for verdict in ("holds", "does not hold"):
        rows = [f"{c.claim} ({c.scaling})" for c in study.claims if c.verdict == verdict]
        parts.append(f"**{verdict}**: {'; '.join(rows) if rows else 'none'}")
    not_shown = sum(c.verdict == "not shown" for c in study.claims)
    return (
        f"Of the {len(study.claims)} claims (Holm over the {study.plan.family_size} tested), "
        + ". ".join(parts)
        + f". The other {not_shown} are not shown."
    )


def readme_block(study: StudyReport, study_path: str, page_path: str) -> str:
    """The README's Results block (between the markers, markers included): the 2 x 2, the primary outcome with
    its power, and the verdicts; the claims table with every test is on the results page."""
    s = study.settings
    primary = next((c for c in study.claims if c.id == study.plan.primary), None)
    primary_line = (
        f"**Primary outcome** ({primary.claim}, {primary.scaling} inputs): {estimate(primary)}, p = "
        f"{pvalue(primary.p_value)}, Holm p = {pvalue(primary.p_holm)}: **{primary.verdict}**."
        if primary
        else ""
    )
    parts = [
        BEGIN,
        f"<!-- generated by `python -m training report` from {study_path}; do not edit by hand -->",
        wrap(f"Final-epoch validation accuracy, mean ± std over {s.resamples} resamples ({len(s.seeds)} seeds x "
             + (f"repeated stratified {s.folds}-fold" if s.folds else "a stratified hold-out split")
             + f"; {s.epochs} epochs, {s.optimizer} lr {s.learning_rate:g}, batch {s.batch_size}):"),
        "",
        two_by_two(study),
        "",
        wrap(primary_line),
        "",
        wrap(power_sentence(study.power, len(s.seeds), s.folds)),
        "",
        wrap(verdict_summary(study)),
        "",
        wrap(f"Every claim with its test, estimate, interval, p and Holm p: [{page_path}]({page_path}) (generated "
             f"with this block from `{study_path}` by `python -m training report`)."),
        END,
    ]  # fmt: skip
    return "\n".join(parts)


def replace_block(readme: str, block: str) -> str:
    """`readme` with the text between the markers (markers included) replaced by `block`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {BEGIN} ... {END} block")
    return readme[:start] + block + readme[end + len(END) :]
