"""A throwaway PostgreSQL server for the tests and benchmarks: Debian's binaries, a cluster in a
temp folder. Here, not under tests/, because ``benchmarks/bench_team.py`` needs it too and the
benchmarks never import the tests (``tests/helpers/postgres.py`` re-exports it).

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` system
user (Debian's package creates it) and its commands run through ``runuser``. The server
listens on a free loopback port with ``fsync=off`` (a test cluster needs no durability;
``start(durable=True)`` keeps PostgreSQL's defaults, for figures a studio's server would give),
trusts its local socket and asks a password on TCP (``scram-sha-256``), so the tests can
show a refused password too. Each test gets a database of its own (:meth:`PgServer.database`).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

SUPERUSER = "shotrun_test"


def binaries() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (newest version first), None when absent."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda f: int(Path(f).parent.name), reverse=True):
        if os.path.exists(os.path.join(folder, "initdb")):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PgServer:
    """A running cluster: its folder, port and superuser password."""

    root: Path
    bindir: Path
    port: int
    password: str
    as_postgres: bool
    _count: int = 0

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(), autocommit=True)

    def database(self) -> str:
        """A new empty database; its URL (with the password)."""
        self._count += 1
        name = f"t{os.getpid()}_{self._count}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       cwd="/")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start(*, durable: bool = False) -> PgServer | None:
    """A new cluster, started; None when PostgreSQL's binaries are not on this machine.
    ``durable``: every commit flushed to disk, as on a real server (slower)."""
    bindir = binaries()
    if bindir is None:
        return None
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="shotrun-pg-"))
    password = secrets.token_hex(12)
    (root / "pw").write_text(password + "\n")
    if as_postgres:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
    server = PgServer(root, bindir, _free_port(), password, as_postgres)
    server._run("initdb", "-D", str(root / "data"), "-U", SUPERUSER, "--pwfile", str(root / "pw"),
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                "--no-sync")
    options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=300"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    server._run("pg_ctl", "-D", str(root / "data"), "-o", options, "-l", str(root / "log"),
                "-w", "start")
    return server
