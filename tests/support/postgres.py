"""A private PostgreSQL server for the tests: its own cluster in a temporary directory, on a free loopback port.

Never the system cluster (the one Debian's package may create on port 5432): `initdb` makes a new one, `pg_ctl`
starts and stops it, and the directory is removed at the end. PostgreSQL refuses to run as root, so under root
both run as the `postgres` OS user (the Debian package creates it) and the directory is given to that user;
otherwise they run as the current user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Final, Literal

from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

from support.servers import HOST, free_port

SUPERUSER: Final = "postgres"
# Where Debian's packages put each major version's server binaries (they are not on PATH there).
DEBIAN_BIN_DIRS: Final = "/usr/lib/postgresql/*/bin"
INITDB_TIMEOUT_S: Final = 120
# pg_ctl's own wait (-t); its process gets a little longer before it is killed.
START_TIMEOUT_S: Final = 60
STOP_TIMEOUT_S: Final = 30
GRACE_S: Final = 15
LOG_TAIL_CHARS: Final = 4000
NOT_INSTALLED: Final = (
    "PostgreSQL (Debian package postgresql) is not installed: no initdb and pg_ctl on PATH "
    f"or in {DEBIAN_BIN_DIRS} (apt-get install postgresql)"
)
NO_POSTGRES_USER: Final = (
    "the tests run as root, which PostgreSQL refuses, and there is no `postgres` OS user to run it as "
    "(Debian's postgresql package creates one)"
)

StopMode = Literal["smart", "fast", "immediate"]


@dataclass(frozen=True)
class Binaries:
    """The two programs the tests run: `initdb` makes a cluster, `pg_ctl` starts and stops its server."""

    initdb: Path
    pg_ctl: Path


@dataclass(frozen=True)
class Owner:
    """Who runs initdb and the server: the `postgres` OS user under root, else no change (the current user)."""

    uid: int | None = None
    gid: int | None = None

    @property
    def extra_groups(self) -> list[int] | None:
        """No supplementary groups for a switched user (root's would stay otherwise)."""
        return [] if self.uid is not None else None


def _version(bin_dir: str) -> tuple[int, ...]:
    """/usr/lib/postgresql/15/bin -> (15,); 9.6 -> (9, 6); a name that is no version sorts first."""
    name = Path(bin_dir).parent.name
    parts = name.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else (-1,)


def find_binaries() -> Binaries | None:
    """initdb and pg_ctl: from PATH, else from the highest version under /usr/lib/postgresql; None if neither."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is not None and pg_ctl is not None:
        return Binaries(Path(initdb), Path(pg_ctl))
    for bin_dir in sorted(glob(DEBIAN_BIN_DIRS), key=_version, reverse=True):
        initdb, pg_ctl = shutil.which("initdb", path=bin_dir), shutil.which("pg_ctl", path=bin_dir)
        if initdb is not None and pg_ctl is not None:
            return Binaries(Path(initdb), Path(pg_ctl))
    return None


def find_owner() -> Owner | None:
    """The OS user the server runs as (see Owner); None when running as root and no `postgres` user exists."""
    if os.geteuid() != 0:
        return Owner()
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        return None
    return Owner(account.pw_uid, account.pw_gid)


class PostgresError(RuntimeError):
    """initdb or pg_ctl failed; the message carries their output and the server's log."""


@dataclass
class PostgresServer:
    """One private cluster: `root` (owned by the server's OS user) holds data/, the socket and server.log."""

    binaries: Binaries
    owner: Owner
    root: Path
    port: int

    @property
    def running(self) -> bool:
        """Whether a server holds the data directory (its postmaster.pid: removed when the server stops)."""
        return (self.data_dir / "postmaster.pid").exists()

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (PGDATA)."""
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        """The server's stderr, appended to across restarts."""
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL of one of the server's databases, as its superuser (trust: no password)."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def log(self) -> str:
        """The end of the server's log (empty before the first start)."""
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except FileNotFoundError:
            return ""

    def initdb(self) -> None:
        """Make the cluster: the superuser `postgres`, trust on loopback only, this port and socket, fsync on."""
        # --no-sync only skips initdb's final flush of the new files: a crash of the machine mid-test loses the
        # temporary cluster anyway. The server itself runs with fsync on (below), as in production.
        options = ["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        self._run([str(self.binaries.initdb), "-D", str(self.data_dir), *options], INITDB_TIMEOUT_S)
        # Only the loopback address and the private socket: no host line for any other address.
        (self.data_dir / "pg_hba.conf").write_text(
            f"local all all trust\nhost all all {HOST}/32 trust\n", encoding="utf-8"
        )
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                "\n# The tests' private server (tests/support/postgres.py).\n"
                f"listen_addresses = '{HOST}'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                # What production runs: a commit returns once its WAL is flushed to disk. (A restart alone does not
                # test the flush, as the OS page cache outlives the server; it keeps the write path production's.)
                "fsync = on\n"
                "synchronous_commit = on\n"
                "full_page_writes = on\n"
            )

    def start(self) -> None:
        """Start the server and wait (bounded) until it accepts connections."""
        self._pg_ctl(["start", "-l", str(self.log_path), "-t", str(START_TIMEOUT_S)], START_TIMEOUT_S)

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server and wait (bounded): `fast` rolls open transactions back and checkpoints; `immediate`
        is a crash (the next start replays the WAL)."""
        self._pg_ctl(["stop", "-m", mode, "-t", str(STOP_TIMEOUT_S)], STOP_TIMEOUT_S)

    def restart(self, mode: StopMode = "fast") -> None:
        """Stop the server and start it again on the same data directory and port."""
        self.stop(mode)
        self.start()

    def _pg_ctl(self, args: list[str], wait_s: float) -> None:
        """pg_ctl on this cluster, waiting (-w) at most `wait_s` (-t); its process gets a little longer."""
        self._run([str(self.binaries.pg_ctl), *args, "-D", str(self.data_dir), "-w"], wait_s + GRACE_S)

    def _run(self, argv: list[str], timeout: float) -> None:
        """Run one of the binaries as the owner; PostgresError with its output and the server's log if it fails."""
        # PG* variables of the caller's shell (PGDATA, PGPORT, ...) must not steer the private cluster.
        env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
        try:
            done = subprocess.run(
                argv,
                cwd=self.root,
                env=env,
                user=self.owner.uid,
                group=self.owner.gid,
                extra_groups=self.owner.extra_groups,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise PostgresError(f"{argv} took over {timeout:.0f} s\n--- server log ---\n{self.log()}") from error
        if done.returncode != 0:
            raise PostgresError(
                f"{argv} exited with {done.returncode}:\n{done.stdout}{done.stderr}\n--- server log ---\n{self.log()}"
            )


@contextmanager
def private_server(binaries: Binaries, owner: Owner) -> Iterator[PostgresServer]:
    """A running private server in a new temporary directory; stopped and removed after the block, also when it
    raises (a test that left the server stopped included)."""
    # The system's temporary directory, not pytest's basetemp: that is root's and 0700 under root, where the
    # postgres user cannot reach it, and its deeper paths could pass a Unix socket path's 107 bytes. mkdtemp's
    # directory is 0700; under root it is given to the server's user.
    root = Path(tempfile.mkdtemp(prefix="pg-test-"))
    server: PostgresServer | None = None
    try:
        if owner.uid is not None and owner.gid is not None:
            os.chown(root, owner.uid, owner.gid)
        server = PostgresServer(binaries, owner, root, free_port())
        server.initdb()
        server.start()
        yield server
    finally:
        try:
            # Also after a failed or timed-out start: a postmaster may be up even though pg_ctl gave up on it.
            if server is not None and server.running:
                try:
                    server.stop("fast")
                except PostgresError:
                    server.stop("immediate")
                    raise
        finally:
            shutil.rmtree(root)


def fresh_database(server: PostgresServer) -> str:
    """A new, empty database with a unique name on `server`; its SQLAlchemy URL."""
    name = f"test_{uuid.uuid4().hex}"
    _admin(server, f'CREATE DATABASE "{name}"')
    return server.url(name)


def drop_database(server: PostgresServer, url: str) -> None:
    """Drop the database of `url` (a fresh_database URL), closing any connection a test left open."""
    name = make_url(url).database
    assert name is not None, url
    assert name.startswith("test_"), url
    _admin(server, f'DROP DATABASE "{name}" WITH (FORCE)')


def _admin(server: PostgresServer, statement: str) -> None:
    """One statement outside a transaction (CREATE and DROP DATABASE refuse to run in one) in the `postgres`
    database."""
    engine = create_engine(server.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
