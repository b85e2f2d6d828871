"""MkDocs hooks: the pages made from the code and from files outside docs/.

- `reference/cli.md`: typer's own Markdown of every command's --help, from the Typer app.
- `reference/api.md`: one mkdocstrings entry per name `from skillforge import ...` gives.
- `index.md`: the README, so the front page is written once.
- `figures/*.png`: the figures the benchmarks write to benchmarks/results/, as they are.

Links are written for GitHub (relative to the file in the repository, so `docs/x.md` in the
README and `../benchmarks/results/x.png` in a page); each page's links to files the site
holds under another path are rewritten to that path.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
FIGURES = "benchmarks/results"
PAGES_FROM_REPO = {"index.md": "README.md"}  # site path -> file in the repository
GENERATED_PAGES = ("reference/cli.md", "reference/api.md")
LINK = re.compile(r"(\]\()([^)\s#]+)([^)]*\))")


def cli_reference() -> str:
    """Every command's help, rendered by typer from the app itself."""
    command = [sys.executable, "-m", "typer", "cli.main", "utils", "docs"]
    command += ["--name", "skillforge", "--title", "CLI reference"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    intro = (
        "Generated from the Typer app at build time: each section is the command's "
        "`--help`, with every option and its default.\n\n"
    )
    title, rest = done.stdout.split("\n", 1)
    # typer shortens each command's summary in the list of commands, at times inside `code`
    lines = [
        line + "`" if line[:2] == "* " and line.count("`") % 2 else line
        for line in rest.splitlines()
    ]
    return f"{title}\n\n{intro}" + "\n".join(lines) + "\n"


def api_reference() -> str:
    """One entry per public name of `skillforge`, where it is defined."""
    import skillforge

    lines = [
        "# Python API reference",
        "",
        "Everything `from skillforge import ...` gives, generated from the docstrings. The",
        "CLI calls these; each command's page shows them at work.",
        "",
    ]
    for name, module in skillforge._EXPORTS.items():
        lines += [f"::: {module}.{name}", "    options:", "      show_root_heading: true", ""]
    return "\n".join(lines)


def on_files(files: Files, config) -> Files:
    for site_path, content in zip(GENERATED_PAGES, (cli_reference(), api_reference()), strict=True):
        files.append(File.generated(config, site_path, content=content))
    for site_path, repo_path in PAGES_FROM_REPO.items():
        files.append(File.generated(config, site_path, abs_src_path=str(ROOT / repo_path)))
    for figure in sorted((ROOT / FIGURES).rglob("*.png")):
        site_path = f"figures/{figure.relative_to(ROOT / FIGURES).as_posix()}"
        files.append(File.generated(config, site_path, abs_src_path=str(figure)))
    return files


def site_path_of(repo_path: str) -> str | None:
    """Where the site holds a file of the repository, or None."""
    if repo_path.startswith("docs/"):
        return repo_path.removeprefix("docs/")
    if repo_path.startswith(f"{FIGURES}/") and repo_path.endswith(".png"):
        return f"figures/{repo_path.removeprefix(f'{FIGURES}/')}"
    for site_path, source in PAGES_FROM_REPO.items():
        if repo_path == source:
            return site_path
    return None


def on_page_markdown(markdown: str, page, config, files) -> str:
    site_path = page.file.src_uri
    repo_path = PAGES_FROM_REPO.get(site_path, f"docs/{site_path}")

    def rewrite(match: re.Match) -> str:
        target = match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        in_repo = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), target))
        in_site = site_path_of(in_repo)
        if in_site is None:
            return match.group(0)  # mkdocs reports it, and --strict fails
        relative = posixpath.relpath(in_site, posixpath.dirname(site_path) or ".")
        return f"{match.group(1)}{relative}{match.group(3)}"

    return LINK.sub(rewrite, markdown)
