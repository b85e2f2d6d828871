"""Skill libraries side by side: one column per library, one row per measure (`library compare`).

The measures are the `eval/...` metrics that `skillforge evaluate` (and the end of
pretraining) logged to each library's run; see `skillforge.evaluate` for their meaning.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable

from skillforge.core.errors import ConfigError

FORMATS = ("table", "markdown", "csv")
_NUMBER = re.compile(r"-?[\d,]+(\.\d+)?")


def _metric(key: str, digits: int) -> Callable:
    def read(record) -> str:
        value = record.metrics.get(f"eval/{key}")
        if value is None or not math.isfinite(value):
            return ""
        return f"{value:,.{digits}f}"

    return read


def _mean_return_std(record) -> str:
    stds = [v for k, v in record.metrics.items() if k.startswith("eval/return_std/skill_")]
    return f"{sum(stds) / len(stds):,.1f}" if stds else ""


def _floored_bound(record) -> str:
    """The I(S;Z) bound floored at 0: I(S;Z) >= 0, so a negative bound says nothing."""
    value = record.metrics.get("eval/mutual_information_bound")
    return "" if value is None or not math.isfinite(value) else f"{max(0.0, value):,.3f}"


def _effective_share(record) -> str:
    value = record.metrics.get("eval/effective_skills")
    return "" if value is None else f"{value / record.info.n_skills:.2f}"


# (row label, how to read it from a `records.LibraryRecord`)
ROWS: list[tuple[str, Callable]] = [
    ("environment", lambda r: r.info.env_id),
    ("skills N", lambda r: str(r.info.n_skills)),
    ("environment steps", lambda r: f"{r.info.step:,}"),
    ("seed", lambda r: r.params.get("seed", "")),
    ("hidden units", lambda r: r.params.get("hidden", "")),
    ("eval episodes per skill", _metric("episodes", 0)),
    ("discriminator accuracy (chance 1/N)", _metric("discriminator_accuracy", 3)),
    ("mean log q(z|s) (chance -ln N)", _metric("log_q_z", 3)),
    ("I(S;Z) lower bound, nats", _metric("mutual_information_bound", 3)),
    ("I(S;Z) bound floored at 0 (< 0: vacuous)", _floored_bound),
    ("I(S;Z) bound / ln N (0 chance, 1 perfect)", _metric("mutual_information_fraction", 3)),
    ("effective skills", _metric("effective_skills", 2)),
    ("effective skills / N", _effective_share),
    ("best skill", _metric("best_skill", 0)),
    ("best skill return", _metric("best_skill_return", 1)),
    ("mean skill return", _metric("mean_skill_return", 1)),
    ("return std over episodes (mean of skills)", _mean_return_std),
    ("mean episode length", _metric("episode_length", 1)),
    ("coverage: bins visited", _metric("coverage_bins", 0)),
    ("coverage of a random policy", _metric("random_coverage_bins", 0)),
    ("coverage measures", lambda r: r.tags.get("skillforge.coverage", "")),
]


def comparison(records) -> list[list[str]]:
    """Rows of the comparison: a header (`measure`, library names), then one row per measure;
    an empty cell is a measure the library does not have."""
    table = [["measure", *(record.info.name for record in records)]]
    for label, read in ROWS:
        table.append([label, *(read(record) for record in records)])
    return table


def not_evaluated(records) -> list[str]:
    """Names of libraries with no evaluation logged."""
    return [r.info.name for r in records if "eval/discriminator_accuracy" not in r.metrics]


def render(table: list[list[str]], fmt: str = "table") -> str:
    """The comparison as aligned text, a Markdown table, or CSV."""
    if fmt == "csv":  # plain numbers for spreadsheets: 20000, not "20,000"
        plain = [[_plain(cell) for cell in row] for row in table]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(plain)
        return out.getvalue()
    if fmt == "markdown":
        header, *rows = [[cell or "-" for cell in row] for row in table]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines) + "\n"
    if fmt == "table":
        cells = [[cell or "-" for cell in row] for row in table]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
        lines = []
        for row in cells:
            first = row[0].ljust(widths[0])
            rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
            lines.append("  ".join([first, *rest]).rstrip())
        return "\n".join(lines) + "\n"
    raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def _plain(cell: str) -> str:
    return cell.replace(",", "") if _NUMBER.fullmatch(cell) else cell


def format_for(path: str | None, fmt: str | None) -> str:
    """`fmt` if given, else from the output file's suffix (.md, .csv), else an aligned table."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    if path is not None and path.lower().endswith((".md", ".markdown")):
        return "markdown"
    if path is not None and path.lower().endswith(".csv"):
        return "csv"
    return "table"
