"""bench/bench_monitoring.py runs end to end at a reduced size: its servers, the switch route and its table.

The figures are the benchmark's to print, not a test's to judge (CI's machine is shared and noisy); what is
tested is that every part ran against the real servers and measured something: the switching server answered
with blocks of both modes, the pairs served requests, GET /monitoring was timed on a full window.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import REPO_DIR, need

pytestmark = pytest.mark.system  # every test here starts a process, nginx, Docker or a browser


def test_bench_monitoring_runs_every_part_and_prints_its_figures(model_dir: Path) -> None:
    need(shutil.which("wrk") is not None, "Debian's wrk is not installed (apt-get install wrk): the load generator")
    cmd = [sys.executable, "bench/bench_monitoring.py", "--models", str(model_dir)]
    cmd += ["--seconds", "4", "--pairs", "2", "--slices", "1", "--client", "wrk"]
    done = subprocess.run(cmd, cwd=REPO_DIR, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert re.search(r"machine steadiness, 0\.5-second slices .*CPU \d+ sd \d+ %", out), out
    switched = re.search(r"\| 1\. one server, monitoring switched .*\((\d+) blocks, (\d+) windows", out)
    assert switched is not None, out
    assert int(switched[1]) >= 40, switched[0]  # 4 s of 50 ms blocks, the two modes in turn
    assert int(switched[2]) >= 2, switched[0]
    assert re.search(r"on [\d,]+ / off [\d,]+ passengers/s\) \| cost \*\*[+-]\d+\.\d+ %\*\* \(95 % interval", out), out
    pairs = re.findall(r"pair \d (on/off|A/A): ([\d,]+) and ([\d,]+) requests", out)
    assert sorted(kind for kind, *_ in pairs) == ["A/A", "A/A", "on/off", "on/off"], out
    assert all(int(n.replace(",", "")) > 0 for _, *served in pairs for n in served), pairs
    assert re.search(r"\| GET /monitoring, full window of 1000 \(200 requests\) \| p50 \d+\.\d+ ms", out), out
