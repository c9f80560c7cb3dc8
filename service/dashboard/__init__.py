"""The metrics dashboard: one HTML page, charts by the vendored Chart.js (works offline)."""
