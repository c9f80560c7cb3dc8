"""Throughput through nginx (deploy/nginx/nginx.conf) in front of 1 and 3 API replicas, and failures while they restart.

Usage:
    .venv/bin/python bench/bench_lb.py [--models DIR] [--seconds 10] [--connections 32] [--json FILE]

For 1 and then 3 replicas (each `python -m service`, the shipped server: one worker, on a free loopback port)
behind nginx on a free loopback port: single-passenger POST /predict for --seconds at --connections with wrk
(Debian's `wrk`; without it a Python client of 8 threads, which measures mostly itself), one replica directly
as the baseline. Then, with 3 replicas, the Python client runs while every replica is restarted in turn
(SIGTERM, start, ready) and one is killed with SIGKILL: requests, failures, throughput. Without --models a quick
pair is trained first.

On a 2-core machine the replicas, nginx and the load generator share the same two cores, so 3 replicas cannot
show 3x one replica's throughput here: the figures say what the proxy costs and that restarts lose nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from lb import PASSENGER, REQUEST_TIMEOUT_S, Load, replicas_behind_nginx, rolling_restart
from server import HOST, models_or_quick_pair

WRK_SCRIPT = f"""wrk.method = "POST"
wrk.body = '{PASSENGER.decode()}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(port: int, seconds: float, connections: int, work: Path) -> dict[str, float]:
    """wrk's requests/s, non-2xx answers and socket errors against POST /predict on this port."""
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)
    threads = min(2, connections)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "-s", str(script)]
    cmd += ["--timeout", f"{REQUEST_TIMEOUT_S:g}s"]  # wrk's default (2 s) counts a slow answer as an error
    out = subprocess.run([*cmd, f"http://{HOST}:{port}/predict"], capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": requests,
        "requests_per_s": rate,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def python_load(port: int, seconds: float) -> dict[str, float]:
    """The Python client's figures (when wrk is missing)."""
    with Load(port, threads=8, max_seconds=seconds) as load:
        load.join()
    result = load.result
    return {"requests": result.sent, "requests_per_s": result.rate, "failures": len(result.failures)}


def main() -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, help="model directory (default: train a quick pair)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each throughput run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    have_wrk = shutil.which("wrk") is not None

    def measure(port: int, work: Path) -> dict[str, float]:
        return wrk(port, args.seconds, args.connections, work) if have_wrk else python_load(port, args.seconds)

    print(f"load average {os.getloadavg()}; client: {'wrk' if have_wrk else 'Python threads (wrk not found)'}")
    figures: dict[str, Any] = {"client": "wrk" if have_wrk else "python", "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-lb-") as tmp:
        work = Path(tmp)
        model_dir = models_or_quick_pair(args.models, work)
        for count in (1, 3):
            with replicas_behind_nginx(count, model_dir, work / f"x{count}") as (nginx, replicas):
                if count == 1:
                    figures["direct_1_replica"] = measure(replicas[0].port, work)
                    print("1 replica, direct:       ", figures["direct_1_replica"])
                figures[f"nginx_{count}_replicas"] = measure(nginx.port, work)
                print(f"{count} replica(s) via nginx: ", figures[f"nginx_{count}_replicas"])
                if count == 3:
                    with Load(nginx.port, threads=8, max_seconds=600) as load:
                        restarts = rolling_restart(replicas)
                    result = load.result
                    steps = restarts.steps
                    during_kill = sum(t >= restarts.kill_started for t in result.failure_times)
                    retried = sum("," in line["upstream_addr"] for line in nginx.access_log())
                    figures["restarts"] = {
                        "requests": result.sent,
                        "failures": len(result.failures),
                        "failures_after_the_sigkill": during_kill,
                        "requests_per_s": round(result.rate),
                        "retried_by_nginx": retried,
                        "steps": steps,
                    }
                    print("3 replicas via nginx, each restarted (SIGTERM) and one killed (SIGKILL):")
                    print(f"  {result.sent} requests, {len(result.failures)} failed ({during_kill} after the SIGKILL),")
                    print(f"  {result.rate:.0f}/s; failures: {result.failures[:5]}")
                    print(f"  {retried} passed to another replica by nginx;", *steps, sep="\n  ")
    figures["load_average_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
