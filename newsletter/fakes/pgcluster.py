"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb + pg_ctl in a temporary folder.

It listens on 127.0.0.1 on a free port (and on a unix socket inside its folder), trusts local
connections, and is stopped and deleted by :meth:`Cluster.stop`: no service is left running.

PostgreSQL refuses to run as root; when we are root (CI containers), the server runs as the
``postgres`` system user that Debian's ``postgresql`` package creates, through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

TEST_SETTINGS = (
    # a cluster that is thrown away: durability buys nothing here
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c shared_buffers=32MB -c max_connections=60"
)


def find_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: $NEWSLETTER_PG_BIN, Debian's folder, or $PATH."""
    env = os.environ.get("NEWSLETTER_PG_BIN", "")
    candidates = [env] if env else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One private PostgreSQL server; :meth:`start` it, ask for :meth:`create_database`."""

    def __init__(self, bin_dir: Path, *, settings: str = TEST_SETTINGS) -> None:
        self.bin_dir = bin_dir
        self.settings = settings
        self.dir = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        self._dbs = 0
        self._watchdog: subprocess.Popen[bytes] | None = None

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, cwd=self.dir, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {proc.stderr.strip()[-1500:]}")

    def start(self) -> Cluster:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} {self.settings}"
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._watch()
        return self

    def _watch(self) -> None:
        """A watchdog process: if this process dies without stop() (kill -9, a crashed test
        worker), it stops the server and deletes the folder, so no service is left running."""
        stop = [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "stop"]
        code = (
            "import os, shutil, subprocess, sys, time\n"
            "parent, folder, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3:]\n"
            "while os.path.isdir(folder):\n"
            "    try:\n"
            "        os.kill(parent, 0)\n"
            "    except ProcessLookupError:\n"
            "        subprocess.run(stop, capture_output=True, cwd=folder, check=False)\n"
            "        shutil.rmtree(folder, ignore_errors=True)\n"
            "        break\n"
            "    time.sleep(1)\n"
        )
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", code, str(os.getpid()), str(self.dir), *stop],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str = "") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        self._dbs += 1
        name = name or f"t{os.getpid()}_{self._dbs}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [*self.as_user, str(self.bin_dir / "pg_ctl"), *("-D", str(self.data)), "stop"],
                capture_output=True,
                cwd=self.dir,
                check=False,
            )
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._watchdog is not None:  # stopped properly: the watchdog has nothing to do
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
