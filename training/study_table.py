"""The study as plain text for the terminal: the 2 x 2, the paired differences, the baselines and the claims."""

from __future__ import annotations

from survival.study import StudyReport
from training.study_claims import describe


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:5.1f} % ± {100 * std:3.1f}"


def table(report: StudyReport) -> str:
    """The study's numbers as plain text (mean ± std over resamples; paired differences with both CIs)."""
    d, s = report.data, report.settings
    resampling = f"repeated {s.folds}-fold" if s.folds else "a stratified hold-out split per seed"
    lines = [
        f"study: {len(s.seeds)} seeds ({resampling}, {s.resamples} resamples) x 2 variants x "
        f"{len(s.scalings)} scalings x {s.epochs} epochs, {s.optimizer} lr {s.learning_rate:g}, on {d.file_name} "
        f"(sha256 {d.sha256[:12]}), {d.n_train} train / {d.n_val} validation rows",
        f"{'final validation accuracy':<28}" + "".join(f"{sc:>22}" for sc in s.scalings),
    ]
    for variant in ("batchnorm", "plain"):
        cells = [report.arms[f"{variant}/{sc}"].accuracy for sc in s.scalings]
        lines.append(f"{variant:<28}" + "".join(f"{_pct(c.mean, c.std):>22}" for c in cells))
    logistic = [report.baselines.logistic[sc] for sc in s.scalings]
    lines.append(f"{'logistic regression':<28}" + "".join(f"{_pct(c.mean, c.std):>22}" for c in logistic))
    majority = report.baselines.majority
    lines.append(f"{'majority class':<28}{_pct(majority.mean, majority.std):>22}")
    lines.append("paired differences (a minus b):")
    for c in report.comparisons:
        if c.metric in ("accuracy", "log_loss"):
            lines.append(f"  {c.a} - {c.b}, {c.metric}: {describe(c)}")
    lines.append(f"claims (plan {report.plan.version}, sha256 {report.plan.sha256[:12]}; Holm over "
                 f"{report.plan.family_size} tests):")  # fmt: skip
    for claim in report.claims:
        lines.append(f"  [{claim.verdict}] {claim.claim} ({claim.scaling}): {claim.result}")
    p = report.power
    lines.append(f"power: MDE {p.mde_points:.1f} points at {100 * report.plan.power:.0f} % power over {p.resamples} "
                 f"resamples (floor {p.mde_limit_points:.1f}); seeds needed for an effect of (points) "
                 + ", ".join(f"{n.effect_points:g}: {n.seeds or 'never'}" for n in p.seeds_needed))  # fmt: skip
    t = report.timings_s
    extra = "".join(
        f", {name} {value:.1f} s"
        for name, value in (("sweep", t.sweep), ("regularization", t.regularization), ("ics", t.ics))
        if value is not None
    )
    lines.append(f"time: study {t.study:.1f} s (CPU {t.study_cpu:.1f} s){extra} on {s.device}, {s.threads} thread(s)")
    return "\n".join(lines)
