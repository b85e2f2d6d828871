"""The documentation: the README is a front page whose links resolve, the pages' links resolve
on GitHub as in the built site, and the references are generated from the code."""

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import typer.main
from test_readme import DOCS, README, ROOT, pages

import skillforge
from cli.main import app

LINK = re.compile(r"\]\(([^)\s#]+)")


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(page.read_text()) if "://" not in target]


def command_names(command, prefix: str = "skillforge") -> list[str]:
    """`skillforge pretrain`, `skillforge library list`, ...: every command of the Typer app."""
    names = []
    for name, sub in getattr(command, "commands", {}).items():
        names += [f"{prefix} {name}", *command_names(sub, f"{prefix} {name}")]
    return names


def test_the_readme_is_a_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 160
    assert "make pretrain" in text and "skillforge pretrain hopper" in text
    assert "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # CI runs the README's command
    assert {"docs/getting-started.md", "docs/python-api.md"} <= set(relative_links(README))


def test_relative_links_resolve_on_github():
    generated = {DOCS / page for page in load_hooks().GENERATED_PAGES}
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in pages()
        for target in relative_links(page)
        if not (page.parent / target).resolve().exists()
        and (page.parent / target).resolve() not in generated
    ]
    assert broken == []


def test_the_cli_reference_has_every_command_from_the_app():
    reference = load_hooks().cli_reference()
    headings = set(re.findall(r"^#+ `(skillforge[^`]*)`", reference, re.M))
    names = command_names(typer.main.get_command(app))
    assert "skillforge library promote" in names
    assert set(names) <= headings
    assert "--discriminator-features" in reference  # options and their defaults, from --help


def test_the_api_reference_has_every_public_name():
    reference = load_hooks().api_reference()
    documented = re.findall(r"^::: ([\w.]+)$", reference, re.M)
    public = [name for name in skillforge.__all__ if name != "__version__"]
    assert [path.rsplit(".", 1)[1] for path in documented] == public
    for path in documented:  # each names where the object is defined
        module, name = path.rsplit(".", 1)
        assert getattr(importlib.import_module(module), name) is getattr(skillforge, name)


def test_links_written_for_github_become_the_sites_paths():
    hooks = load_hooks()

    def rewritten(site_path: str, markdown: str) -> str:
        page = SimpleNamespace(file=SimpleNamespace(src_uri=site_path))
        return hooks.on_page_markdown(markdown, page, config=None, files=None)

    readme = "[start](docs/getting-started.md) ![paths](docs/metra.png) [x](https://a.b/c.md)"
    assert rewritten("index.md", readme) == (
        "[start](getting-started.md) ![paths](metra.png) [x](https://a.b/c.md)"
    )
    page = "![reuse](../../benchmarks/results/reuse.png) [home](../../README.md#two-commands)"
    assert rewritten("results/reuse.md", page) == (
        "![reuse](../figures/reuse.png) [home](../index.md#two-commands)"
    )
