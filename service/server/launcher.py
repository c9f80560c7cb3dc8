"""The launcher of `python -m service`: check the settings and the checkpoints once, then serve them with uvicorn.

Every start-up problem is found here, before any worker exists: a bad setting or a bad checkpoint ends
the launcher at once with one line and a non-zero status, whatever the number of workers. With more
than one worker the Prometheus values are shared through a multiprocess directory this prepares and
removes. `uvicorn service.main:app` still works for one worker; this is the production entry point.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import resource
import signal
import sys
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from service.auth import KeyRing
from service.config import Settings, SettingsError, read_settings
from service.server.config import ServiceConfig
from service.server.metrics_dir import metrics_directory
from service.store import recording

SETTINGS_FAILURE = 2


def raise_file_limit() -> int:
    """Raise the soft limit on open files to the hard one (each connection holds one); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _exit_quietly(sig: int, frame: FrameType | None) -> None:
    # Before uvicorn has its handlers in place, and when it re-raises the signal after a graceful stop.
    raise SystemExit(0)


def serve(config: ServiceConfig) -> int:
    """Run uvicorn's server (one worker) or its supervisor (several); the exit status."""
    signal.signal(signal.SIGTERM, _exit_quietly)
    if config.workers == 1:
        server = uvicorn.Server(config)
        server.run()
        return 0 if server.started else 1
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])

    def forward_at_once(sig: int, frame: FrameType | None) -> None:
        # uvicorn's supervisor acts on signals every half second; the workers start draining now.
        supervisor.signal_queue.append(sig)
        for process in supervisor.processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward_at_once)
    supervisor.run()
    # A worker that failed to start (a checkpoint broken after the check above) stopped the supervisor.
    return 1 if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes) else 0


def settings_help() -> str:
    """Every setting by section, with its default and what it does (from the Settings class itself)."""
    lines: list[str] = []
    fields = Settings.model_fields
    for title, names in Settings.sections().items():
        lines.append(f"\n{title}")
        for name in names:
            field = fields[name]
            default = "unset" if field.default is None else str(field.default)
            if isinstance(field.default, bool):
                default = "1" if field.default else "0"
            lines.append(f"  {name.upper()} (default {default}): {field.description}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Check, then serve; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Serve the models (training first: python -m training). Settings are environment variables:",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--app", default="service.main:app", help="ASGI app to serve (benchmarks add endpoints)")
    args = parser.parse_args(argv)
    try:
        settings = read_settings()
        keys = KeyRing.from_settings(settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return SETTINGS_FAILURE
    if not keys.enabled and not is_loopback(settings.host):
        print(
            f"warning: no API keys are set and HOST={settings.host} is not a loopback address: anyone who can "
            "reach the port can call every route (set API_KEYS or API_KEYS_FILE)",
            file=sys.stderr,
            flush=True,
        )
    # Imported only now: NumPy and the checkpoints take most of a second, and a bad setting is reported at once.
    from service.pair import ServedPair
    from survival.checkpoint import CheckpointError

    try:
        ServedPair.load(settings.model_dir)
    except CheckpointError as exc:
        print(f"error: cannot load the models: {exc}", file=sys.stderr, flush=True)
        return 1
    if recording(settings.store_url):
        # The schema is brought to this code's version here, once, before any worker starts (service/store/).
        from service.store.database import StoreError
        from service.store.store import prepare

        try:
            print(f"service: {prepare(settings)}", file=sys.stderr, flush=True)
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
    raise_file_limit()
    if settings.port:
        base = f"http://{settings.host}:{settings.port}"
        print(
            f"service: the dashboard at {base}/metrics, the API at {base}/docs, "
            f"Prometheus at {base}/metrics/prometheus",
            file=sys.stderr,
            flush=True,
        )
    with metrics_directory(settings.web_concurrency):
        try:
            return serve(ServiceConfig(settings, args.app))
        except KeyboardInterrupt:
            return 130
