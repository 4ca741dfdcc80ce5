"""A real PostgreSQL server on a free loopback port and a throw-away data directory.

For tests and ``rollcall bench fleet``, as :mod:`firmware.bench.broker` is for mosquitto.
Uses Debian's server binaries (``/usr/lib/postgresql/<N>/bin``). ``initdb`` refuses to run
as root, so as root the server runs as the ``postgres`` system user (the data directory is
created under /tmp and handed to that user). Trust authentication on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from firmware.bench.broker import free_port


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (apt-get install postgresql)."""


def postgres_bin() -> Path:
    """Directory of initdb/pg_ctl (the newest installed major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise PostgresUnavailable("PostgreSQL server is not installed (apt-get install postgresql): "
                                  "no /usr/lib/postgresql/*/bin/initdb")
    return Path(found[-1]).parent


class Postgres:
    """One private PostgreSQL cluster; ``url`` is ready once ``start()`` returns."""

    def __init__(self, port: int | None = None, settings: dict[str, str] | None = None,
                 dbname: str = "rollcall") -> None:
        self.port = port or free_port()
        self.settings = settings or {}
        self.dbname = dbname
        self.bin = postgres_bin()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.root: Path | None = None

    @property
    def datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> "Postgres":
        """initdb, start the server, create the database; raises RuntimeError with the log."""
        self.root = Path(tempfile.mkdtemp(prefix="rollcall-pg-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        try:
            self._init_and_start()
        except BaseException:
            self.stop()
            raise
        return self

    def _init_and_start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.datadir), "-U", self.user, "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--locale=C")
        options = {"listen_addresses": "'127.0.0.1'", "port": str(self.port),
                   "unix_socket_directories": f"'{self.root}'", "max_connections": "60",
                   "logging_collector": "off", **self.settings}
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in options.items())
        self._start_server()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.dbname)

    def _start_server(self, attempts: int = 3) -> None:
        """pg_ctl start; another port when the free one was taken meanwhile (shared machines)."""
        for attempt in range(attempts):
            try:
                self.pg_ctl("start", "-w", "-t", "60", "-l", str(self.root / "postgres.log"))
                return
            except RuntimeError as exc:
                if "Address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
            self.port = free_port()
            with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write(f"port = {self.port}\n")

    def pg_ctl(self, *args: str) -> None:
        result = self._run(str(self.bin / "pg_ctl"), "-D", str(self.datadir), *args, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {result.stderr.strip()}\n{self.log_text()[-2000:]}")

    def log_text(self) -> str:
        path = (self.root or Path("/nonexistent")) / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the data directory; safe twice."""
        if self.root is None:
            return
        try:
            self.pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> "Postgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_ready(url: str, timeout: float = 10.0) -> None:
    """Block until a connection to ``url`` succeeds."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
