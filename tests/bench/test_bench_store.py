"""bench/bench_store.py runs end to end at its smoke-test size (--quick) and prints every figure it promises.

The figures are the benchmark's to print, not a test's to judge (CI's machine is shared and noisy); what is
tested is that every part ran against real servers and a real store and measured something: both servers of part 1
answered, every answered prediction was found in the table, the 10,000 outcomes were recorded (the benchmark checks
each answer's counts), GET /comparison was timed on a filled store that it counted right, the writer's queue was
sampled, and the kill -9 trial acknowledged predictions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import REPO_DIR, need

pytestmark = pytest.mark.system  # it starts servers and wrk

NUMBER = r"[\d,]+"


def test_bench_store_quick_runs_every_part_and_prints_its_figures(model_dir: Path) -> None:
    need(shutil.which("wrk") is not None, "Debian's wrk is not installed (apt-get install wrk): the load generator")
    cmd = [sys.executable, "bench/bench_store.py", "--models", str(model_dir), "--quick"]
    done = subprocess.run(cmd, cwd=REPO_DIR, capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in done.stderr, done.stderr

    rounds = re.findall(r"^\s+\d+  (store off|SQLite)\s+(\d+)\s", out, re.MULTILINE)
    assert sorted(name for name, _ in rounds) == ["SQLite", "SQLite", "store off", "store off"], out
    assert all(int(rps) > 0 for _, rps in rounds), rounds
    assert re.search(rf"/predict with the store on \(SQLite\): \d+\.\d% of off \({NUMBER} / {NUMBER} req/s", out), out
    # The benchmark's own check (every answered prediction in the table, none dropped) held: its verdict is PASS.
    written = re.search(
        rf"^PASS  every answered prediction written \(SQLite\): ({NUMBER}) answered, ({NUMBER}) rows, "
        rf"store_written_total ({NUMBER}), store_dropped_total 0, store_queue_depth 0",
        out,
        re.MULTILINE,
    )
    assert written is not None, out
    answered, rows, total = (int(n.replace(",", "")) for n in written.groups())
    assert answered > 0, written[0]
    assert rows == total >= answered, written[0]
    assert re.search(r"failed requests during the load runs of part 1: 0", out), out

    for kind in ("JSON", "CSV", "JSON again"):
        line = rf"POST /feedback, 10,000 outcomes, {kind}: median \d+ ms \(min \d+, max \d+, n=1; target < 1 s\)"
        assert re.search(line, out), out

    compared = re.search(
        r"GET /comparison, 20,000 predictions, 2,000 labelled \(SQLite\): p50 (\d+\.\d) ms computing the report "
        r"\(min [\d.]+, max [\d.]+, n=5; target < 250 ms\); from the worker's 1 s cache p50 [\d.]+ ms",
        out,
    )
    assert compared is not None, out
    assert float(compared[1]) > 0, compared[0]
    big_feedback = r"POST /feedback, 10,000 outcomes, JSON, into the store of 20,000 predictions, 2,000 labelled "
    assert re.search(big_feedback + r"\(SQLite\): \d+ ms", out), out

    depths = re.search(r"store_queue_depth each second \(\d+ samples\): \[([\d, ]*)\]", out)
    assert depths is not None, out
    assert len(depths[1].split(",")) >= 3, depths[0]  # about 5 s of load, sampled each second
    writer = re.search(
        rf"^PASS  writer under \d+ s of load \(SQLite\): ({NUMBER}) req/s, store_queue_depth max {NUMBER} "
        rf"\(sampled each second\), 0 dropped, ({NUMBER}) written, ({NUMBER}) rows; ({NUMBER}) writes",
        out,
        re.MULTILINE,
    )
    assert writer is not None, out
    rps, writer_written, writer_rows, writes = (int(n.replace(",", "")) for n in writer.groups())
    assert rps > 0, writer[0]
    assert writer_written == writer_rows > 0, writer[0]
    assert writes > 0, writer[0]

    trial = re.search(r"trial 1: ([\d,]+) acknowledged, (\d+) missing from the store", out)
    assert trial is not None, out
    assert int(trial[1].replace(",", "")) > 0, trial[0]
    assert re.search(r"kill -9 at 200 req/s \(SQLite\): at most \d+ acknowledged predictions lost", out), out
