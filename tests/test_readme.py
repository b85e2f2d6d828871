"""The README's marked examples run as written, in order, in a fresh folder."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SHIPPED = README.parent / "exports" / "libraries"
BLOCK = re.compile(r"<!-- readme-test: (shell|python) -->\s*```\w*\n(.*?)```", re.S)


def readme_examples() -> list[tuple[str, str]]:
    return BLOCK.findall(README.read_text())


def test_readme_has_tested_examples():
    kinds = [kind for kind, _ in readme_examples()]
    assert "shell" in kinds and kinds.count("python") >= 2


def test_readme_examples_run(workdir):
    bin_dir = Path(sys.executable).parent
    for kind, code in readme_examples():
        if kind == "shell":
            for line in code.strip().splitlines():
                command = line.replace(".venv/bin/", f"{bin_dir}/").replace(
                    "exports/libraries/",
                    f"{SHIPPED}/",  # the shipped files, from any folder
                )
                done = subprocess.run(
                    command, shell=True, cwd=workdir, capture_output=True, text=True, timeout=600
                )
                assert done.returncode == 0, f"{line}\n{done.stderr}"
        else:
            done = subprocess.run(
                [sys.executable, "-c", code],
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"{code}\n{done.stderr}"
