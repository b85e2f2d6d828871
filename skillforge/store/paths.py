"""Where a store is: its tracking URI, the sqlite file and the artifact folder beside it, the
lock that serialises its creation, and the repair of artifact paths an older skillforge
stored wrongly."""

from __future__ import annotations

import contextlib
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

from skillforge.core.errors import SkillforgeError

SQLITE_PREFIX = "sqlite:///"
ARTIFACT_FOLDER = "mlruns"
"""The artifacts of a sqlite store live in this folder beside its database file."""

STORE_FOLDER_TAG = "skillforge.store_folder"
"""Tag of the Default experiment: the folder the store was last opened in (to follow a move)."""

LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
)
"""Where MLflow keeps artifact paths in a sqlite store (what `repair_artifact_locations`
fixes)."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The store to use: `uri`, else MLFLOW_TRACKING_URI, else ./mlflow.db (sqlite, absolute).

    A bare path and a relative `sqlite:///mlflow.db` are taken from the working directory
    (MLflow would put their artifacts and skillforge their lock at the file-system root).
    An explicit absolute sqlite URI also keeps MLflow from falling back to a stray ./mlruns
    file store, which MLflow 3 refuses.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return f"{SQLITE_PREFIX}{Path.cwd() / 'mlflow.db'}"
    if uri in ("databricks", "databricks-uc", "uc") or uri.startswith("databricks:"):
        return uri  # MLflow's own names for a Databricks workspace
    if "://" not in uri:  # a bare path: treat it as a sqlite file
        return f"{SQLITE_PREFIX}{Path(uri).expanduser().resolve()}"
    if uri.startswith(SQLITE_PREFIX):
        path, mark, query = uri[len(SQLITE_PREFIX) :].partition("?")
        if path and not path.startswith("/") and path != ":memory:":
            return f"{SQLITE_PREFIX}{os.path.normpath(Path.cwd() / path)}{mark}{query}"
    return uri


def shown_uri(uri: str) -> str:
    """A tracking URI fit for a message or a log: a password in it is masked."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.hostname}{port}"))
    except ValueError:  # not a URL we can take apart: show nothing of it but the scheme
        return uri.split("://", 1)[0] + "://..."


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite URI as SQLAlchemy reads it (`sqlite:////abs/x.db` is
    /abs/x.db, `sqlite:///x.db` is x.db in the working directory), or None for other stores."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    path = unquote(uri[len(SQLITE_PREFIX) :].partition("?")[0])
    if path.startswith("/"):  # one leading slash: `//tmp` would be a network path
        path = "/" + path.lstrip("/")
    return Path(path)


def check_sqlite_file(uri: str) -> None:
    """Refuse, in one line and before MLflow retries for minutes, a sqlite URI that cannot be a
    database file: no file name, a folder, a device such as /dev/null, a parent that is a file."""
    db = sqlite_path(uri)
    if db is None and not uri.startswith("sqlite:"):
        return
    if db is None or not db.name or db.name == ":memory:" or uri.endswith("/"):
        raise SkillforgeError(
            f"{uri} names no database file (an in-memory store would lose everything); "
            "use sqlite:////absolute/path/mlflow.db or a plain file path"
        )
    problem = ""
    if db.is_dir():
        problem = f"{db} is a folder; name a database file in it, e.g. {db / 'mlflow.db'}"
    elif db.exists() and not db.is_file():
        problem = f"{db} is not a regular file"
    else:
        parent = next((p for p in db.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            problem = f"{parent} is a file, not a folder"
    if problem:
        raise SkillforgeError(f"cannot open the MLflow store {uri}: {problem}")


def store_exists(uri: str) -> bool:
    """False for a sqlite store whose database file is not there yet (opening it would
    create it); True for every other store."""
    db = sqlite_path(uri)
    return db is None or db.is_file()


def artifact_root(uri: str) -> str | None:
    """The absolute artifact folder of a sqlite store (`mlruns` beside the database), or
    None for other stores (their server decides)."""
    db = sqlite_path(uri)
    return None if db is None else str(db.absolute().parent / ARTIFACT_FOLDER)


@contextmanager
def store_lock(uri: str):
    """Serialise schema creation of a local sqlite store across processes (MLflow's alembic
    migration crashes when two processes create the same fresh database at once), and the
    check-then-create of a library name. Not re-entrant: never nest two of them."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = open(db.parent / f".{db.name}.lock", "w")  # noqa: SIM115 (held across yield)
    except OSError as error:
        raise SkillforgeError(
            f"cannot open the MLflow store {uri}: {error.strerror or error}"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def relocate_moved_store(uri: str, path_tags: tuple[str, ...]) -> str | None:
    """Follow a store folder that was moved or copied (`cp -r`, with its `mlruns/` and
    `checkpoints/`): rewrite the paths under the folder it was last opened in (artifact
    locations, and run tags `path_tags` such as checkpoint paths) to point under the
    folder it is in now, so a copy uses its own files and never the original's. Call it
    with the store lock held. Returns the folder the store came from, or None.

    Paths outside the store's folder (a `--checkpoint-dir` elsewhere) are left as they are;
    a database moved without its `mlruns/` keeps pointing at the artifacts it left."""
    import sqlite3

    db = sqlite_path(uri)
    if db is None or not db.is_file():
        return None
    here = os.path.abspath(db.parent)
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection, connection:
        row = connection.execute(
            "SELECT value FROM experiment_tags WHERE experiment_id = 0 AND key = ?",
            (STORE_FOLDER_TAG,),
        ).fetchone()
        before = row[0] if row else None
        if before == here or _same_folder(before, here):
            return None
        moved = before is not None and (
            Path(here, ARTIFACT_FOLDER).is_dir() or not Path(before, ARTIFACT_FOLDER).exists()
        )
        if before is not None and not moved:
            return None  # the database alone moved: its artifact paths are still right
        if moved:
            prefix = "substr({0}, 1, length(?)) = ?"
            new = "? || substr({0}, length(?) + 1)"
            inside = (before + "/", before + "/")
            for table, column in LOCATION_COLUMNS:
                connection.execute(
                    f"UPDATE {table} SET {column} = {new.format(column)} "
                    f"WHERE {prefix.format(column)}",
                    (here, before, *inside),
                )
            keys = ", ".join("?" * len(path_tags))
            connection.execute(
                f"UPDATE tags SET value = {new.format('value')} WHERE key IN ({keys}) "
                f"AND (value = ? OR {prefix.format('value')})",
                (here, before, *path_tags, before, *inside),
            )
        connection.execute(
            "INSERT OR REPLACE INTO experiment_tags (key, value, experiment_id) VALUES (?, ?, 0)",
            (STORE_FOLDER_TAG, here),
        )
    return before if moved else None


def _same_folder(one: str | None, other: str) -> bool:
    try:
        return one is not None and os.path.samefile(one, other)
    except OSError:
        return False


def place_default_experiment(uri: str) -> None:
    """Put the artifacts of a new sqlite store's Default experiment beside the database too
    (MLflow puts them in `mlruns/0` of whichever folder the store was first opened from).
    Call it with the store lock held, right after the store was created."""
    import sqlite3

    db = sqlite_path(uri)
    if db is None:
        return
    location = str(Path(artifact_root(uri)) / "0")
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection, connection:
        connection.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (location,)
        )


def repair_artifact_locations(uri: str) -> int:
    """Rewrite the artifact paths of a sqlite store that were stored as `//abs/path` (by
    earlier versions of skillforge, from the `//` of `sqlite:////abs/...`) as `/abs/path`. MLflow
    reads `//tmp/...` as a path on a host called `tmp`, so `mlflow models serve` found no
    artifacts. Call it with the store lock held; returns the number of paths fixed."""
    import sqlite3

    db = sqlite_path(uri)
    if db is None or not db.is_file():
        return 0
    fixed = 0
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        for table, column in LOCATION_COLUMNS:
            where = f"WHERE {column} LIKE '//%'"
            found = table in tables and connection.execute(f"SELECT 1 FROM {table} {where}")
            if not found or found.fetchone() is None:
                continue  # nothing to fix: read, never written
            with connection:  # one transaction per table
                fixed += connection.execute(
                    f"UPDATE {table} SET {column} = '/' || ltrim({column}, '/') {where}"
                ).rowcount
    return fixed
