"""Issue 24's attacks at full size against `python -m service` (shipped settings), a normal client alongside.

Usage:
    .venv/bin/python bench/bench_hostile.py [--models DIR] [--only NAME ...]

One worker, loopback only. For each attack: the normal client (one single-passenger POST /predict every 50 ms,
open loop, each on a new connection, 10 s timeout) and its failures, p50 and p99; the server's resident memory
before and at its peak; what the attacker got, and how soon the server let go of its connections. Each attack
is bounded in connections and seconds; the whole run takes about two minutes.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import hostile_attacks as attacks
from hostile_kit import Memory, NormalClient
from server import models_or_quick_pair, serving

# Shipped deadlines (service/config.py): SEND_TIMEOUT_S, KEEP_ALIVE_TIMEOUT_S, BODY_TIMEOUT_S.
SEND_S, BODY_S = 10.0, 10.0
MIB = 1024 * 1024


def scenarios(port: int, pid: int) -> dict[str, Callable[[], attacks.Outcome]]:
    """The attacks of the issue, at the sizes it reported."""
    return {
        "static slow readers (2,100)": lambda: attacks.static_readers(port, pid, 2_100, SEND_S + 10),
        "pipelined 10k-row readers (100)": lambda: attacks.pipelined_readers(port, pid, 100, 10_000, 4, SEND_S + 10),
        "endless chunked trailer": lambda: attacks.endless_trailer(port, BODY_S + 2),
        "one-byte chunks": lambda: attacks.one_byte_chunks(port, BODY_S + 2),
        "endless chunk extension": lambda: attacks.chunk_extension(port, BODY_S + 2),
        "4 MiB bodies, 6/s": lambda: attacks.big_bodies(port, 6, 10_000, 10.0, per_s=1.0, size=4 * MIB - 4096),
        "4 MiB key floods (20 clients)": lambda: attacks.key_floods(port, 20, 3_500_000, 6.0, per_s=1.0),
        "uploads at 100 KB/s under churn": lambda: attacks.uploads_under_churn(port, 5, 800_000, 100_000, 400.0, 10.0),
    }


def main() -> int:
    """Start the server, run each attack with the normal client alongside, print one block per attack."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None, help="model directory (default: a quick pair)")
    parser.add_argument("--only", nargs="*", default=None, help="run only attacks whose name contains one of these")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="bench_hostile_") as tmp:
        models = models_or_quick_pair(args.models, Path(tmp))
        with serving("service.main:app", models, Path(tmp) / "server.log", access_log=True) as (port, pid):
            for name, attack in scenarios(port, pid).items():
                if args.only and not any(part in name for part in args.only):
                    continue
                with Memory(pid) as memory:
                    before = memory.now_mib()
                    with NormalClient(port) as normal:
                        time.sleep(0.5)
                        outcome = attack()
                        time.sleep(0.5)
                print(f"== {name}")
                print(f"   {normal.figures.line()}")
                print(f"   {outcome.line()}")
                print(f"   server RSS {before:.0f} MiB before, {memory.peak_mib:.0f} MiB at peak", flush=True)
                time.sleep(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
