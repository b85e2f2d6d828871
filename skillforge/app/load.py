"""Load a stored library's skills: by name, run id, or the latest."""

from __future__ import annotations

from skillforge.app.locations import local_checkpoint
from skillforge.skills.library import SkillLibrary
from skillforge.store import tracking


def load_library(
    reference: str | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    *,
    client=None,
    info: tracking.LibraryInfo | None = None,
) -> SkillLibrary:
    """Load a library's skills from the store (name, run id, or None for the latest).

    A caller that already holds the store's `client` and the library's `info` passes them
    (no second connection, no second lookup)."""
    client = client or tracking.connect_existing(tracking_uri)
    info = info or tracking.find_library(reference, experiment=experiment, client=client)
    library = SkillLibrary.from_checkpoint(local_checkpoint(client, info), name=info.name)
    library.run_id = info.run_id
    return library
