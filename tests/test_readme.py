"""The documented examples run as written: the blocks marked `<!-- test: shell -->` or
`<!-- test: python -->` in the README, then in the site's pages in the order of its nav, all in
one fresh folder, in order (a page may use what an earlier one made)."""

import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SHIPPED = ROOT / "exports" / "libraries"
TESTED = re.compile(r"<!-- test: (shell|python) -->\n```\w*\n(.*?)```", re.S)
MARKER = re.compile(r"<!-- (test: (shell|python)|not tested: .+) -->")
RUNNABLE = ("```bash", "```python")  # the blocks a reader could run


class Example(NamedTuple):
    page: Path
    kind: str  # "shell" or "python"
    code: str


def nav_pages(nav: list) -> list[str]:
    """The Markdown files of a mkdocs nav, in order."""
    pages = []
    for item in nav:
        for entry in item.values() if isinstance(item, dict) else [item]:
            pages += nav_pages(entry) if isinstance(entry, list) else [entry]
    return pages


def pages() -> list[Path]:
    """The README, then every page of the site written in docs/ (index.md is the README; the
    references are generated at build time)."""
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    written = [DOCS / page for page in nav_pages(nav)]
    return [README, *(page for page in written if page.exists())]


def documented_examples() -> list[Example]:
    found = [(page, TESTED.findall(page.read_text())) for page in pages()]
    return [Example(page, kind, code) for page, blocks in found for kind, code in blocks]


def unmarked_blocks(page: Path) -> list[str]:
    """Runnable blocks that say neither that they are tested nor why not."""
    lines = page.read_text().splitlines()
    return [
        f"{page.relative_to(ROOT)}:{number + 1}"
        for number, line in enumerate(lines)
        if line in RUNNABLE and not (number and MARKER.fullmatch(lines[number - 1]))
    ]


def test_the_readme_and_the_docs_have_tested_examples():
    kinds = [example.kind for example in documented_examples() if example.page == README]
    assert "shell" in kinds and "python" in kinds
    tested = {example.page for example in documented_examples()}
    assert {DOCS / "getting-started.md", DOCS / "python-api.md", DOCS / "concepts.md"} <= tested


def test_every_runnable_block_is_tested_or_says_why_not():
    assert [block for page in pages() for block in unmarked_blocks(page)] == []


def test_every_page_written_in_docs_is_in_the_nav():
    written = {page for page in DOCS.rglob("*.md")}
    assert written == set(pages()) - {README}


def run_shell(line: str, folder: Path) -> subprocess.CompletedProcess:
    command = line.replace(".venv/bin/", f"{Path(sys.executable).parent}/").replace(
        "exports/libraries/",
        f"{SHIPPED}/",  # the shipped files, from any folder
    )
    return subprocess.run(
        command, shell=True, cwd=folder, capture_output=True, text=True, timeout=600
    )


def run_python(code: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=600
    )


def test_documented_examples_run(workdir):
    """Each command line and Python block once: the README's examples, repeated on their own
    page, run where the README shows them."""
    done: set[str] = set()
    for page, kind, code in documented_examples():
        steps = code.strip().splitlines() if kind == "shell" else [code]
        for step in steps:
            if step in done:
                continue
            ran = run_shell(step, workdir) if kind == "shell" else run_python(step, workdir)
            assert ran.returncode == 0, f"{page.relative_to(ROOT)}\n{step}\n{ran.stderr}"
            done.add(step)
