"""The hierarchical agent deployed: the meta-controller and its library's skills as one
registered model, served over HTTP, stateless (the hold state goes in and out with every
request), acting like the agent that was trained."""

import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime
import pytest
from helpers import assert_one_line_error, post_json, serving, tiny_config
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import pretrain as pipeline
from skillforge.app.hierarchical import train_hierarchical
from skillforge.core.config import NO_EVALUATION
from skillforge.core.downstream_config import HierarchicalConfig
from skillforge.core.envs import episode_seed
from skillforge.reuse.skill_actions import SkillActionEnvs, run_skill_policy
from skillforge.reuse.tasks import make_task
from skillforge.skills.sources import RegistrySkills
from skillforge.store.ui_server import free_port

TASK, K = "Pendulum-v1", 10


@pytest.fixture
def trained(store):
    library = pipeline.pretrain(tiny_config(name="lib"), store, evaluation=NO_EVALUATION)
    config = HierarchicalConfig(
        total_steps=800, skill_steps=K, hidden=32, learning_starts=20, eval_episodes=1, envs=2
    )
    return library, train_hierarchical("lib", config, store)


class Recording:
    """The skills of one lane, recording the skill and the action of every env step."""

    def __init__(self, skills) -> None:
        self.skills = skills
        self.n_skills, self.obs_dim, self.action_dim = (
            skills.n_skills,
            skills.obs_dim,
            skills.action_dim,
        )
        self.chosen: list[int] = []
        self.actions: list[np.ndarray] = []

    def act(self, obs: np.ndarray, skills: np.ndarray) -> np.ndarray:
        actions = self.skills.act(obs, skills)
        self.chosen.append(int(skills[0]))
        self.actions.append(actions[0].copy())
        return actions


def test_the_served_agent_acts_like_the_trained_agent_over_a_whole_episode(trained, store):
    library, result = trained
    assert result.agent_uri == f"models:/lib.agent-{TASK}/1"
    # in process: the agent as it was trained and evaluated (skill-action lanes, greedy choice)
    skills = Recording(RegistrySkills.load("lib", library.library.spec, store))
    lanes = SkillActionEnvs([make_task(TASK)], skills, K)
    run_skill_policy(lanes, lambda obs, rng: result.meta_controller.choose(obs), 7, episodes=1)
    # served: one request per env step, the hold state sent back with the next observation
    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", result.agent_uri, "--port", str(port)]
    with serving([*command, "--tracking-uri", store], port):
        env = make_task(TASK)
        obs, _ = env.reset(seed=episode_seed(7, 0))
        state, chosen, actions, done = {"skill": [0], "steps_left": [0]}, [], [], False
        while not done:
            inputs = {"observation": [obs.tolist()], **state}
            status, answer = post_json(port, json.dumps({"inputs": inputs}).encode())
            assert status == 200, answer
            served = answer["predictions"]
            state = {"skill": served["next_skill"], "steps_left": served["next_steps_left"]}
            chosen.append(state["skill"][0])
            actions.append(np.array(served["action"][0], dtype=np.float32))
            obs, _, terminated, truncated, _ = env.step(actions[-1])
            done = terminated or truncated
        too_long = {"observation": [obs.tolist()], "skill": [0], "steps_left": [K + 1]}
        status, answer = post_json(port, json.dumps({"inputs": too_long}).encode())
        assert status == 400 and answer["message"] == f"steps_left {K + 1} out of range 0..{K}"
    assert len(actions) == len(skills.actions) == 200  # one whole Pendulum episode
    np.testing.assert_allclose(np.stack(actions), np.stack(skills.actions), atol=1e-5)
    assert chosen == skills.chosen  # the same skills, each held for K steps
    assert all(chosen[step] == chosen[step - 1] for step in range(1, 200) if step % K)


def test_the_agent_loads_with_plain_mlflow_and_exports_to_onnx(trained, store, workdir):
    library, result = trained
    mlflow.set_tracking_uri(store)
    agent = mlflow.pyfunc.load_model(result.agent_uri)
    schema = agent.metadata.get_input_schema()
    assert schema.input_names() == ["observation", "skill", "steps_left"]
    obs = np.random.default_rng(3).normal(size=(5, 3)).astype(np.float32)
    start = {"observation": obs, "skill": np.zeros(5, dtype=np.int64)}
    first = agent.predict({**start, "steps_left": np.zeros(5, dtype=np.int64)})
    np.testing.assert_array_equal(first["next_skill"], result.meta_controller.choose(obs))
    np.testing.assert_array_equal(first["next_steps_left"], np.full(5, K - 1))
    np.testing.assert_allclose(
        first["action"], library.library.act(obs, first["next_skill"]), atol=1e-5
    )
    held = agent.predict({**start, "skill": first["next_skill"] ^ 1, "steps_left": np.full(5, 3)})
    np.testing.assert_array_equal(held["next_skill"], first["next_skill"] ^ 1)  # still held
    np.testing.assert_array_equal(held["next_steps_left"], np.full(5, 2))
    model = mlflow.MlflowClient(store).get_registered_model(f"lib.agent-{TASK}")
    assert model.tags["skill_steps"] == str(K) and model.tags["library"] == "lib"
    runner, export = CliRunner(), ["export", "lib", "--agent", TASK, "--tracking-uri", store]
    exported = runner.invoke(app, export)
    path = Path(f"exports/lib.agent-{TASK}/agent.onnx").resolve()
    assert exported.exit_code == 0 and str(path) in exported.stdout, exported.output
    session = onnxruntime.InferenceSession(str(path))  # plain onnxruntime, no skillforge
    metadata = session.get_modelmeta().custom_metadata_map
    assert metadata["skill_steps"] == str(K) and metadata["task"] == TASK
    names = [output.name for output in session.get_outputs()]
    steps = session.run(None, {**start, "steps_left": np.zeros(5, dtype=np.int64)})
    outputs = dict(zip(names, steps, strict=True))
    for name, value in first.items():
        np.testing.assert_array_equal(outputs[name], value)
    assert_one_line_error(runner.invoke(app, export), "already exists; pass --force")
    assert_one_line_error(
        runner.invoke(app, ["export", "lib", "--agent", "hopper", "--tracking-uri", store]),
        "library lib has no agent on hopper",
    )
