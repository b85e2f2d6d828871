"""Libraries with their runs' data, side by side: what `skillforge library compare` reads."""

from __future__ import annotations

from dataclasses import dataclass

from skillforge.store.tracking import (
    LibraryInfo,
    connect_existing,
    find_library,
    list_libraries,
)


@dataclass(frozen=True)
class LibraryRecord:
    """A library with its run's latest metrics, params and tags (what `compare` reads)."""

    info: LibraryInfo
    experiment_id: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


def library_records(references: list[str], tracking_uri: str | None = None) -> list[LibraryRecord]:
    """The libraries named by `references` (names or run ids; none: every library, newest
    first), each with its run's data."""
    client = connect_existing(tracking_uri)
    if references:
        infos = [find_library(reference, client=client) for reference in references]
    else:
        infos = list_libraries(client=client)
        if not infos:
            find_library(None, client=client)  # raises the "no libraries" error
    records = []
    for info in infos:
        run = client.get_run(info.run_id)
        data = run.data
        records.append(
            LibraryRecord(
                info, run.info.experiment_id, dict(data.metrics), dict(data.params), dict(data.tags)
            )
        )
    return records
