"""The dashboard's input-monitoring section: static markup that static/monitoring.js fills from GET /monitoring."""

from __future__ import annotations

from typing import Final

# The charts are drawn by the browser from GET /monitoring (and redrawn every 15 s), so the page shows the
# window of the worker that answers that request, live, without re-rendering the page.
MONITORING_SECTION: Final[
    str
] = """<section id="monitoring"><h2>Input monitoring: is the traffic still the training data?</h2>
<p id="monitoring-summary" class="verdict">Loading <code>GET /monitoring</code>&hellip;</p>
<div class="grid">
<div><h3>Fare: live vs training (quantiles)</h3><div class="chart"><canvas id="chart-monitor-fare"
 aria-label="fare distribution, live vs training"></canvas></div></div>
<div><h3>Age (known ages): live vs training (quantiles)</h3><div class="chart"><canvas id="chart-monitor-age"
 aria-label="age distribution, live vs training"></canvas></div></div>
<div><h3>Ticket class and missing ages: live vs training</h3><div class="chart"><canvas id="chart-monitor-pclass"
 aria-label="ticket class and missing-age fractions, live vs training"></canvas></div></div>
<div><h3>p-value per feature against its threshold</h3><div class="chart"><canvas id="chart-monitor-pvalues"
 aria-label="p-values against the threshold"></canvas></div></div>
</div>
<h3>Hidden-layer activation shift (largest |z| per layer against its bound)</h3>
<div class="chart"><canvas id="chart-monitor-layers" aria-label="activation shift per layer"></canvas></div>
<div class="scroll"><table id="monitoring-tests"><thead><tr><th>test</th><th>statistic</th><th>p-value</th>
<th>threshold</th><th>drift</th></tr></thead><tbody></tbody></table></div>
<p class="note">Each worker tests its last <code>MONITOR_WINDOW</code> served passengers against its training split:
Kolmogorov-Smirnov for Fare and Age, chi-square for the ticket class, a two-proportion test for the missing-age
rate; per hidden unit a z-test of the mean pre-activation against the training split's exact mean and variance.
<code>MONITOR_ALPHA</code> bounds the false-alarm rate of the whole verdict (Bonferroni).</p></section>"""
