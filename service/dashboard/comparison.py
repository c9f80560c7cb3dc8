"""The dashboard's live-comparison section: static markup that static/comparison.js fills from GET /comparison."""

from __future__ import annotations

from typing import Final

# Drawn by the browser from GET /comparison (and redrawn every 30 s): the figures come from the prediction store,
# the same on every worker and replica, without re-rendering the page. The tables' rows are built by the script;
# the markup holds only the places they go and what each figure means.
COMPARISON_SECTION: Final[
    str
] = """<section id="comparison" data-state="loading"><h2>Live comparison: which model is right more often on
real traffic?</h2>
<p id="comparison-summary" class="verdict" data-state="loading">Loading <code>GET /comparison</code>&hellip;</p>
<p id="comparison-counts" class="note"></p>
<div id="comparison-labelled" hidden>
<h3>Each model on the labelled predictions: all of them, and the most recent</h3>
<div class="scroll"><table id="comparison-models"><thead></thead><tbody></tbody></table></div>
<div class="grid">
<div><h3>The same passengers, paired</h3>
<table id="comparison-paired" class="cm"><thead><tr><th></th><th>plain right</th><th>plain wrong</th></tr></thead>
<tbody><tr><th>batchnorm right</th><td id="paired-both-right"></td><td id="paired-only-batchnorm"></td></tr>
<tr><th>batchnorm wrong</th><td id="paired-only-plain"></td><td id="paired-both-wrong"></td></tr></tbody></table>
<p class="note">Only the discordant pairs (one model right, the other wrong) say which model is better.</p>
<h3>Accuracy difference, batchnorm &minus; plain (points)</h3>
<div class="chart short"><canvas id="chart-comparison-difference"
 aria-label="accuracy difference with its confidence sequence and fixed-n interval"></canvas></div>
<div class="scroll"><table id="comparison-difference"><thead></thead><tbody></tbody></table></div></div>
<div><h3>Reliability diagram (equal-mass bins)</h3>
<div class="chart"><canvas id="chart-comparison-reliability"
 aria-label="reliability diagram: observed survival rate against the mean predicted probability"></canvas></div></div>
</div>
</div>
<div id="comparison-estimate" hidden>
<h3>Expected accuracy of the predictions without an outcome yet (CBPE) vs the realised accuracy</h3>
<div class="scroll"><table id="comparison-estimated"><thead><tr><th>model</th><th>predictions without an
outcome</th><th>expected accuracy</th><th>calibrated on</th><th>realised accuracy (recent labelled)</th></tr>
</thead><tbody></tbody></table></div>
</div>
<p class="note">Both models score every request, and the store records both, so each labelled passenger compares
them on the same input. The verdict follows the <em>anytime-valid</em> confidence sequence (Howard et al. 2021): it
holds however often this page is read, unlike the fixed-n interval and McNemar's exact p-value, which are right for
one look at a number of outcomes fixed in advance and, read every day, end up showing a difference that is not
there. ECE: the expected calibration error over the diagram's bins. Expected accuracy: each model's own
probabilities, recalibrated on the labelled predictions, averaged over recent predictions without an outcome
(confidence-based performance estimation). Outcomes are fed back with <code>POST /feedback</code>.</p>
</section>"""
