"""`skillforge library list|show|compare`: the libraries of a store, one by one or side by side."""

from __future__ import annotations

from dataclasses import dataclass

from skillforge.evaluation import compare
from skillforge.store.records import library_records
from skillforge.store.registry import SkillInfo, library_skills
from skillforge.store.tracking import LibraryInfo, find_library


@dataclass(frozen=True)
class Comparison:
    """A rendered comparison table and what it covers."""

    text: str
    style: str
    libraries: int
    not_evaluated: list[str]


def show_library(
    reference: str, tracking_uri: str | None = None
) -> tuple[LibraryInfo, list[SkillInfo]]:
    """One library and its skills (registered model, evaluated return)."""
    info = find_library(reference, tracking_uri)
    return info, library_skills(info, tracking_uri)


def compare_libraries(
    references: list[str],
    fmt: str | None = None,
    output: str | None = None,
    tracking_uri: str | None = None,
) -> Comparison:
    """The evaluation measures of `references` (default: every library), one column each, as
    a table, markdown or csv (`fmt`, else from the `output` file's suffix)."""
    style = compare.format_for(output, fmt)  # refuse a bad --format before touching the store
    records = library_records(references, tracking_uri)
    text = compare.render(compare.comparison(records), style)
    return Comparison(text, style, len(records), compare.not_evaluated(records))
