"""Every library file shipped in exports/libraries/ imports into a fresh store, and its
registered skills give the actions the file recorded (a fresh clone reuses them as shipped)."""

from pathlib import Path

import numpy as np
import pytest

from skillforge.app.library_file import import_library, read_library_file
from skillforge.app.load import load_library
from skillforge.core.config import NO_EVALUATION
from skillforge.core.errors import CheckpointError
from skillforge.rl.checkpoint import load_checkpoint, save_checkpoint

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "exports" / "libraries").glob("*.pt"))


def test_the_shipped_libraries_are_there():
    names = {path.name for path in SHIPPED}
    assert {
        "hopper.pt",
        "hopper-default.pt",
        "hopper-ref.pt",
        "bipedalwalker-ref.pt",
        "mountaincar-x.pt",
        "halfcheetah-x.pt",
        "mountaincar-ref.pt",
        "metra-halfcheetah.pt",
        "metra-ant.pt",
        "diayn-x-halfcheetah.pt",
        "diayn-xy-ant.pt",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_a_shipped_library_imports_and_its_skills_give_the_recorded_actions(path, store):
    check = load_checkpoint(path)["check"]
    result = import_library(
        path, name=f"shipped-{path.stem}", tracking_uri=store, evaluation=NO_EVALUATION
    )
    assert len(result.models) == result.library.n_skills
    registered = load_library(f"shipped-{path.stem}", store)  # from the Model Registry
    actions = registered.act(check["observations"].numpy(), check["skills"].numpy())
    np.testing.assert_allclose(actions, check["actions"].numpy(), atol=1e-5)


def test_a_file_whose_skills_changed_is_refused(tmp_path):
    state = load_checkpoint(SHIPPED[0])
    state["check"]["actions"] = state["check"]["actions"] + 0.01  # not what the skills give
    damaged = save_checkpoint(state, tmp_path / "damaged.pt")
    with pytest.raises(CheckpointError, match="differ from those it recorded by 0.01"):
        read_library_file(damaged)
    read_library_file(SHIPPED[0])  # the file as shipped passes its own check
