"""`skillforge library save|import`: a library as one small weights-only file, to ship or
share, and back into a store as a finished library with every skill registered.

A library file is a checkpoint without what only training needs (replay buffer, optimiser,
random generators): the spec, the config, the step, the policy and the discriminator, and
the evaluation measures of the library it came from, and the actions its skills took on a
few fixed observations (`check`), which every read of the file reproduces. It loads with
`torch.load(weights_only=True)` and `SkillLibrary.from_checkpoint` reads it like a checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from skillforge.app.checks import check_store_timeout
from skillforge.app.library_run import PretrainResult
from skillforge.app.locations import (
    checkpoint_path_for,
    checkpoint_root,
    local_checkpoint,
    refuse_leftover_checkpoint,
)
from skillforge.app.pretrain import complete_from_state, start_library_run
from skillforge.core.config import (
    DEFAULT_STORE_TIMEOUT,
    EvaluationOptions,
    PretrainConfig,
)
from skillforge.core.envs import make_env
from skillforge.core.errors import CheckpointError, ConfigError
from skillforge.core.names import is_valid_name
from skillforge.core.versions import __version__
from skillforge.rl.checkpoint import LIBRARY_FILE, load_checkpoint, save_checkpoint
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import SkillLibrary
from skillforge.store import tracking

KEPT = ("sac.policy.", "discriminator.")
"""The agent's networks a library file keeps: the skills and q(z|s), not the critics."""
IMPORT_EVALUATION = EvaluationOptions(episodes=5, every=0, video=False)
CHECK_OBSERVATIONS = 8
CHECK_TOLERANCE = 1e-5


def action_check(library: SkillLibrary) -> dict:
    """What a library file records to check its skills on every read: observations of the
    env's first resets (fixed seeds), a skill for each, and the actions they gave."""
    env = make_env(library.spec.env_id)
    observations = np.stack([env.reset(seed=seed)[0] for seed in range(CHECK_OBSERVATIONS)])
    env.close()
    observations = observations.astype(np.float32)
    skills = np.arange(CHECK_OBSERVATIONS) % library.n_skills
    actions = library.act(observations, skills)
    return {
        key: torch.from_numpy(value)
        for key, value in (("observations", observations), ("skills", skills), ("actions", actions))
    }


def check_actions(library: SkillLibrary, check: dict, path: str | Path) -> None:
    """Refuse a file whose skills do not give the actions it recorded (within 1e-5)."""
    actions = library.act(check["observations"].numpy(), check["skills"].numpy())
    gap = float(np.abs(actions - check["actions"].numpy()).max())
    if not gap <= CHECK_TOLERANCE:
        raise CheckpointError(
            f"{path}: its skills' actions differ from those it recorded by {gap:.2g} "
            f"(more than {CHECK_TOLERANCE:g}): the file is damaged or this torch computes "
            "them differently"
        )


def save_library(
    reference: str | None, out: str | Path, tracking_uri: str | None = None, force: bool = False
) -> Path:
    """Write library `reference` (name, run id, None for the latest) to the file `out`."""
    out = Path(out)
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to replace it")
    if out.is_dir():
        raise ConfigError(f"{out} is a folder; name a file, e.g. {out / 'library.pt'}")
    if not out.absolute().parent.is_dir():  # a typo is not a reason to make folders
        raise ConfigError(f"cannot write {out}: there is no folder {out.absolute().parent}")
    client = tracking.connect_existing(tracking_uri)
    info = tracking.find_library(reference, client=client)
    state = load_checkpoint(local_checkpoint(client, info))
    config = _config_of(state, info.checkpoint or str(out))
    if int(state["step"]) < config.total_steps:
        raise ConfigError(
            f"library {info.name} has trained {int(state['step']):,} of its "
            f"{config.total_steps:,} steps; finish it first (skillforge pretrain --resume "
            f"{info.name})"
        )
    metrics = client.get_run(info.run_id).data.metrics
    evaluation = {key: float(value) for key, value in metrics.items() if key.startswith("eval/")}
    library_state = {
        "kind": LIBRARY_FILE,
        "skillforge_version": __version__,
        "spec": state["spec"],
        "config": {**state["config"], "name": info.name},
        "step": int(state["step"]),
        "agent": {key: value for key, value in state["agent"].items() if key.startswith(KEPT)},
        "evaluation": evaluation,
        "source": {"run_id": info.run_id, "library": info.name},
    }
    spec = LibrarySpec.from_dict(state["spec"])
    library_state["check"] = action_check(
        SkillLibrary.from_state_dict(spec, library_state["agent"], name=info.name)
    )
    path = save_checkpoint(library_state, out)
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)  # a file to share, not a private temp file
    return path


def read_library_file(path: str | Path) -> tuple[dict, PretrainConfig, SkillLibrary]:
    """The file's state, config and skills, checked; a corrupt, truncated, foreign or
    code-carrying file is a one-line CheckpointError (nothing runs, nothing is written)."""
    _refuse_non_library_file(Path(path))
    state = load_checkpoint(path)
    if state.get("kind") != LIBRARY_FILE:
        raise CheckpointError(
            f"{path} is a training checkpoint, not a library file; make one with "
            "`skillforge library save NAME --out FILE`"
        )
    config = _config_of(state, str(path))
    try:
        spec = LibrarySpec.from_dict(state["spec"])
        library = SkillLibrary.from_state_dict(spec, state["agent"], name=config.name)
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path} does not hold a skill library ({error})") from None
    if spec.env_id != config.env_id or spec.n_skills != config.n_skills:
        raise CheckpointError(f"{path} holds a spec and a config that disagree")
    if "check" in state:  # files saved before the check was recorded have none
        check_actions(library, state["check"], path)
    return state, config, library


def import_library(
    path: str | Path,
    name: str | None = None,
    tracking_uri: str | None = None,
    experiment: str = tracking.DEFAULT_EXPERIMENT,
    checkpoint_dir: str | Path = "checkpoints",
    evaluation: EvaluationOptions = IMPORT_EVALUATION,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
) -> PretrainResult:
    """Register the library in file `path` in the store as a finished library (renamed to
    `name` if given): evaluated, every skill registered, like a pretrained one."""
    check_store_timeout(store_timeout)
    state, config, _ = read_library_file(path)
    if name is not None:
        if not is_valid_name(name):
            raise ConfigError(f"--name {name!r} is not a valid library name")
        config = config.replace(name=name)
    root = checkpoint_root(checkpoint_dir)
    target = checkpoint_path_for(root, config.name)
    client = tracking.connect(tracking_uri)
    tracking.refuse_taken_name(client, config.name)
    refuse_leftover_checkpoint(target)
    config = config.replace(total_steps=int(state["step"]))
    job = start_library_run(client, config, experiment, root, evaluation, store_timeout, {})
    state = {**state, "config": config.to_dict()}
    save_checkpoint(state, job.checkpoint_path)
    client.set_tag(job.run_id, tracking.TAG_STEP, str(config.total_steps))
    return complete_from_state(job, state, sent_step=config.total_steps)


ZIP_MAGIC = b"PK\x03\x04"
"""How every library file starts: `torch.save` writes a zip archive."""


def _refuse_non_library_file(path: Path) -> None:
    """Refuse a file that is no zip archive, say random bytes or text, as what it is: not a
    library file (torch would read it as a legacy pickle and say something stranger)."""
    try:
        with path.open("rb") as file:
            start = file.read(len(ZIP_MAGIC))
    except OSError:
        return  # missing, a folder, unreadable: load_checkpoint says which
    if start and start != ZIP_MAGIC:
        raise CheckpointError(
            f"{path} is not a library file (those are written by `skillforge library save`)"
        )


def _config_of(state: dict, where: str) -> PretrainConfig:
    try:
        int(state["step"])
        return PretrainConfig.from_dict(dict(state["config"]))
    except ConfigError as error:
        raise CheckpointError(f"{where} holds an invalid config ({error})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{where} does not hold a skill library ({error!r})") from None
