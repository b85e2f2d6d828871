"""A trained hierarchical agent as one registered model `<library>.agent-<task>`: the
meta-controller and the library's skills in one ONNX graph (`reuse.agent.HierarchicalAgent`),
checked against PyTorch and run by the model code `store/graph_model.py`.

Stateless: observation (batch, obs_dim), skill and steps_left (batch,) in, steps_left 0 at
an episode's start; action, next_skill and next_steps_left out, sent back as skill and
steps_left with the next observation of the same episode.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skillforge.core.errors import SkillforgeError
from skillforge.core.names import agent_model_name
from skillforge.export.graph import save_checked_onnx
from skillforge.reuse.agent import AGENT_OUTPUTS, HierarchicalAgent
from skillforge.reuse.meta_controller import MetaController
from skillforge.reuse.skill_actions import SkillSet
from skillforge.reuse.tasks import make_task, task_env_id
from skillforge.skills.library import LibraryPolicy, SkillLibrary, library_tags
from skillforge.store import registry

AGENT_PARITY_STATES = 512
"""Task states (visited by random actions) on which the agent's graph is compared with PyTorch."""

SAME_SKILLS_TOLERANCE = 1e-4
"""Largest |action difference| between the skills the meta-controller was trained with and
the library's own (onnxruntime against PyTorch differ by about 1e-6)."""


def register_agent_model(
    client,
    meta: MetaController,
    trained_with: SkillSet,
    library: SkillLibrary,
    task: str,
    skill_steps: int,
    run_id: str,
) -> str:
    """Register `meta` (trained on `task`, built on `library`'s env, with the skills
    `trained_with`, each held for `skill_steps` steps) and `library`'s skills as one model
    `<library>.agent-<task>` to the active run `run_id` (tag `task_env_id`: the env the task
    is built on); returns its model URI. Refused (SkillforgeError) when `trained_with` are
    not `library`'s skills (e.g. an alias naming an older version of the library)."""
    n_skills = library.n_skills
    env_id = task_env_id(task, library.spec.env_id)
    states = task_states(task, env_id, AGENT_PARITY_STATES)  # (rows, task obs_dim)
    rng = np.random.default_rng(0)
    inputs = {
        "observation": states,
        "skill": rng.integers(n_skills, size=len(states)),  # (rows,) any hold state
        "steps_left": rng.integers(skill_steps + 1, size=len(states)),
    }
    skill_obs = states[:, : library.spec.obs_dim]
    difference = np.abs(
        trained_with.act(skill_obs, inputs["skill"]) - library.act(skill_obs, inputs["skill"])
    ).max()
    if difference > SAME_SKILLS_TOLERANCE:
        raise SkillforgeError(
            f"the skills the meta-controller was trained with differ from library "
            f"{library.name}'s checkpoint (by {difference:.3g}); train it with --skills-from "
            "checkpoint, or with the newest library model, to register it as an agent"
        )
    agent = HierarchicalAgent(
        meta, LibraryPolicy(library.policy, n_skills), skill_steps, library.spec.obs_dim
    ).eval()
    example = {name: array[:4] for name, array in inputs.items()}
    example["steps_left"] = np.zeros(4, dtype=np.int64)  # four episode starts
    tags = {
        **library_tags(library, library.run_id),
        "run_id": run_id,
        "library_run_id": library.run_id,
        "task": task,
        "task_env_id": env_id,
        "skill_steps": str(skill_steps),
        "reward_scale": f"{meta.reward_scale:.6g}",
    }
    obs_dim, action_dim = states.shape[1], library.spec.action_dim
    description = (
        f"Meta-controller over the {n_skills} skills of library {library.name}, trained on "
        f"{task} built on {env_id} (run {run_id}), holding each chosen skill for "
        f"{skill_steps} env steps. "
        f"Stateless: observation (batch, {obs_dim}), skill and steps_left (batch,) in "
        "(steps_left 0 at an episode's start); action, next_skill and next_steps_left out: "
        "send them back as skill and steps_left with the next observation."
    )
    metadata = {
        **tags,
        "inputs": f"observation float32 [batch, {obs_dim}]; skill int64 [batch] in "
        f"0..{n_skills - 1}; steps_left int64 [batch] in 0..{skill_steps}",
        "outputs": f"action float32 [batch, {action_dim}]; next_skill int64 [batch]; "
        "next_steps_left int64 [batch]",
        "input_ranges": json.dumps({"skill": [0, n_skills - 1], "steps_left": [0, skill_steps]}),
        "description": description,
    }

    def write_graph(path: Path) -> None:
        save_checked_onnx(agent, inputs, path, metadata, AGENT_OUTPUTS)

    name = agent_model_name(library.name, task)
    return registry.register_graph(client, name, "agent", write_graph, example, tags, description)


def task_states(task: str, env_id: str, rows: int, seed: int = 0) -> np.ndarray:
    """(rows, obs_dim) float32 states of `task`, built on `env_id`, visited by uniformly
    random actions."""
    env = make_task(task, env_id)
    env.action_space.seed(seed)
    states = []
    obs, _ = env.reset(seed=seed)
    while len(states) < rows:
        states.append(np.asarray(obs, dtype=np.float32))
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + len(states))
    env.close()
    return np.stack(states)
