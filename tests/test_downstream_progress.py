"""Every phase of `finetune` and `hierarchical` shows its progress: off a terminal (a log,
CI) each phase announces itself when it starts, then prints plain lines with its rate and
ETA (every 30 s, and at its end). Real CLI processes on a real tiny library."""

from __future__ import annotations

import re

import pytest
from downstream_cli import DEADLINE, cli, folder  # noqa: F401  (a fixture)

ANNOUNCEMENT = re.compile(r"^(?P<label>[a-zA-Z][\w\- ()]*): (?P<total>[\d,]+) (?P<unit>\w+)$")


def phases_shown(out: str) -> set[tuple[str, str]]:
    """Each announced phase (label, unit), checked to end with a progress line of its own
    that gives the work done of the total, its rate and an ETA."""
    lines = out.splitlines()
    shown = set()
    for index, line in enumerate(lines):
        announced = ANNOUNCEMENT.match(line)
        if announced is None:
            continue
        label, total, unit = announced["label"], announced["total"], announced["unit"]
        unit = unit if unit.endswith("s") else f"{unit}s"  # "1 model", "2 models"
        progress = re.compile(
            rf"^{re.escape(label)} [\d,]+/{total} \(\d+%\) [\d.,]+ {unit}/s "
            r"elapsed \d+:\d\d:\d\d ETA (\d+:\d\d:\d\d|-:--:--)"
        )
        assert any(progress.match(later) for later in lines[index + 1 :]), (line, out)
        shown.add((label, unit))
    return shown


def run_to_the_end(folder, *args: str) -> str:  # noqa: F811  (not the fixture)
    process = cli(folder, *args, "--library", "pend", "--threads", "1")
    out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0, err
    assert "\x1b[" not in out  # no terminal escapes in a log
    return out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            "finetune --steps 8000 --learning-starts 100 --batch-size 32 --baselines sac "
            "--eval-episodes 2 --validation-episodes 2 --validate-every 2000",
            {
                ("best-skill selection", "episodes"),
                ("evaluation (every skill)", "episodes"),
                ("fine-tuning", "steps"),
                ("validation (fine-tuning)", "episodes"),
                ("evaluation (fine-tuning)", "episodes"),
                ("SAC", "steps"),
                ("evaluation (SAC)", "episodes"),
                ("registration", "models"),
            },
        ),
        (
            "hierarchical --steps 10000 --baselines best-skill,random-skills,sac "
            "--eval-episodes 2 --validation-episodes 2 --validate-every 2000",
            {
                ("meta-controller", "steps"),
                ("best-skill selection", "episodes"),  # the meta-controller's
                ("best-skill selection", "steps"),  # the baseline's, on its whole budget
                ("validation", "episodes"),
                ("evaluation (meta-controller)", "episodes"),
                ("evaluation (every skill)", "episodes"),
                ("random skills", "steps"),
                ("evaluation (random skills)", "episodes"),
                ("SAC", "steps"),
                ("evaluation (SAC)", "episodes"),
                ("registration", "models"),
            },
        ),
    ],
)
def test_every_phase_announces_itself_and_shows_rate_and_eta(folder, args, expected):  # noqa: F811
    shown = phases_shown(run_to_the_end(folder, *args.split()))
    assert expected <= shown, shown


def test_a_phase_line_comes_every_log_interval_with_its_rate_and_eta(capsys):
    from cli.progress import phase_bars
    from skillforge.reuse.phases import phase

    with phase_bars(log_seconds=0.0) as progress_for, phase(progress_for, "selection", 40) as bar:
        for done in (10, 20):
            bar.on_progress(done)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "best-skill selection: 40 episodes"
    assert [line.split(" (")[0] for line in lines[1:]] == [
        "best-skill selection 10/40",
        "best-skill selection 20/40",
        "best-skill selection 40/40",
    ]
    assert all(" episodes/s elapsed " in line and " ETA " in line for line in lines[1:])
