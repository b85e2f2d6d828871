"""The shared store of a team or a cluster: `mlflow server` on PostgreSQL, artifacts proxied.

Clients (sweeps on every node, `skillforge ... --tracking-uri http://HOST:PORT`) talk HTTP
to the server only: it holds the database password and writes the artifacts to
`--artifacts-destination` (a local folder or an `s3://` bucket), so nodes need neither.
"""

from __future__ import annotations

import sys
from pathlib import Path

from skillforge.store.postgres import PostgresServer
from skillforge.store.ui_server import UiError, UiServer, free_port, port_in_use

WORKERS = 2
"""Server processes: enough for a few concurrent trials; each imports mlflow (~10 s)."""


class TrackingServer(UiServer):
    """`mlflow server` with a database backend and proxied artifacts."""

    what = "the MLflow server"

    def __init__(
        self, backend_uri: str, artifacts: str, host: str = "127.0.0.1", port: int = 5000
    ) -> None:
        super().__init__(backend_uri, host, port)
        self.artifacts = artifacts

    def prepare(self) -> None:
        """Nothing: the server creates its schema itself, with its artifact root (opening the
        database here would give the Default experiment a local artifact folder)."""

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "mlflow", "server", "--serve-artifacts"]
        command += ["--artifacts-destination", self.artifacts, "--workers", str(WORKERS)]
        return command + ["--host", self.host, "--port", str(self.port)]

    def environment(self) -> dict[str, str]:
        return {"MLFLOW_BACKEND_STORE_URI": self.uri}  # its password stays out of `ps`


class SharedStore:
    """PostgreSQL in `folder/postgres` and an MLflow server on it, artifacts in
    `folder/artifacts` unless `artifacts` names another place; or, with `backend_uri`, a
    server on a database you run yourself. `with SharedStore(...) as store:` the server
    answers at `store.url` inside; both stop after."""

    def __init__(
        self,
        folder: str | Path,
        host: str = "127.0.0.1",
        port: int = 5000,
        db_port: int = 0,
        artifacts: str | None = None,
        backend_uri: str | None = None,
    ) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.database = None
        if backend_uri is None:
            self.database = PostgresServer(self.folder / "postgres", db_port or free_port())
        self.backend_uri = backend_uri
        self.artifacts = artifacts or str(self.folder / "artifacts")
        self.host, self.port = host, port
        self.server: TrackingServer | None = None
        self.url = ""

    def check(self) -> None:
        """Refuse, before anything is written: a port in use, a folder PostgreSQL cannot
        reach."""
        if port_in_use(self.host, self.port):
            raise UiError(f"port {self.port} on {self.host} is in use; pick another with --port")
        if self.database is not None and not (self.database.data / "PG_VERSION").is_file():
            self.database.check_reachable()

    def start(self) -> str:
        self.check()
        if not self.artifacts.startswith(("s3://", "gs://", "wasbs://")):
            Path(self.artifacts).mkdir(parents=True, exist_ok=True)
        backend = self.backend_uri or self.database.start()
        self.server = TrackingServer(backend, self.artifacts, self.host, self.port)
        try:
            self.url = self.server.start()
        except BaseException:
            self.stop()
            raise
        return self.url

    def wait(self) -> int:
        return self.server.wait()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.database is not None:
            self.database.stop()

    def __enter__(self) -> SharedStore:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
