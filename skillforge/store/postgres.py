"""A PostgreSQL server in a folder of its own: the backend of a shared MLflow server.

The first start creates the cluster (`initdb`, password authentication, a `skillforge`
user whose random password stays in the folder, readable by its owner only) and the
`mlflow` database; later starts reuse them. PostgreSQL refuses to run as root: as root, the
data folder is handed to the `postgres` user and its programs run as that user.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from skillforge.core.errors import SkillforgeError

USER = "skillforge"
DATABASE = "mlflow"
SYSTEM_USER = "postgres"


class PostgresError(SkillforgeError):
    """PostgreSQL is missing, or will not start."""


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs (`initdb`, `pg_ctl`)."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    if versions:  # Debian's layout: the newest installed version
        return Path(versions[-1]).parent
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "psql").exists():
        return Path(found).parent
    raise PostgresError(
        "PostgreSQL's server is not installed (Debian: apt-get install postgresql; "
        "`make system-deps` does it)"
    )


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


class PostgresServer:
    """`with PostgresServer(folder, port) as db:` PostgreSQL answers at `db.uri` inside."""

    def __init__(self, folder: str | Path, port: int, host: str = "127.0.0.1") -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.data = self.folder / "data"
        self.port, self.host = port, host
        self.bin = postgres_bin()
        self.as_root = os.geteuid() == 0

    @property
    def uri(self) -> str:
        """SQLAlchemy URI of the `mlflow` database (with its password: keep it private)."""
        password = (self.folder / "password").read_text().strip()
        return f"postgresql://{USER}:{password}@{self.host}:{self.port}/{DATABASE}"

    def start(self) -> str:
        """Create the cluster on first use, start it, make sure the database exists."""
        if not (self.data / "PG_VERSION").is_file():
            self._create()
        log = self.folder / "postgres.log"
        options = f"-h {self.host} -p {self.port} -k {self.folder}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(log), "-o", options, "-w", "start")
        try:
            databases = self._psql("SELECT datname FROM pg_database")
            if DATABASE not in databases.split():
                self._psql(f"CREATE DATABASE {DATABASE} OWNER {USER}")
        except BaseException:
            self.stop()
            raise
        return self.uri

    def stop(self) -> None:
        if (self.data / "postmaster.pid").is_file():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def check_reachable(self) -> None:
        """As root, PostgreSQL runs as the `postgres` user, who must reach the folder: refuse
        a folder under a private one (e.g. /root) before writing anything."""
        if not self.as_root:
            return
        existing = self.folder
        while not existing.exists():
            existing = existing.parent
        reach = ["runuser", "-u", SYSTEM_USER, "--", "test", "-x", str(existing)]
        if subprocess.run(reach, capture_output=True).returncode != 0:
            raise PostgresError(
                f"PostgreSQL runs as the {SYSTEM_USER} user, who cannot reach {existing}: "
                "pick a --folder it can reach (e.g. under /srv or /tmp)"
            )

    def _create(self) -> None:
        self.check_reachable()
        self.folder.mkdir(parents=True, exist_ok=True)
        password = self.folder / "password"
        password.write_text(secrets.token_urlsafe(24) + "\n")
        password.chmod(0o600)
        if self.as_root:  # the server's own user must own its files
            shutil.chown(self.folder, SYSTEM_USER)
            shutil.chown(password, SYSTEM_USER)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={password}",
            "--auth-host=scram-sha-256",
            "--auth-local=peer",
            "-E",
            "UTF8",
        )
        if self.as_root:
            password.chmod(0o600)
            shutil.chown(password, "root")

    def _psql(self, sql: str) -> str:
        env = {"PGPASSWORD": (self.folder / "password").read_text().strip()}
        return self._run(
            "psql",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            USER,
            "-d",
            "postgres",
            "-At",
            "-c",
            sql,
            env=env,
        )

    def _run(self, program: str, *args: str, env: dict | None = None) -> str:
        command = [str(self.bin / program), *args]
        if self.as_root and program != "psql":
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=self.folder if self.folder.exists() else None,
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise PostgresError(
                f"PostgreSQL {program} failed: {lines[-1] if lines else 'no message'}"
                + (f" (log: {self.folder / 'postgres.log'})" if program == "pg_ctl" else "")
            )
        return result.stdout
