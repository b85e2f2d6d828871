"""Libraries worth reusing: the position prior, the sparse goal task, fine-tuning from a skill,
library files (save and import), and the refusals around them."""

from __future__ import annotations

import hashlib
import os
import pickle

import gymnasium as gym
import mlflow
import numpy as np
import pytest
import torch
from helpers import assert_one_line_error, tiny_config
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import pretrain as pipeline
from skillforge.app.library_file import import_library, read_library_file, save_library
from skillforge.core.config import NO_EVALUATION, PretrainConfig
from skillforge.core.downstream_config import FinetuneConfig
from skillforge.core.envs import make_env
from skillforge.core.errors import CheckpointError, ConfigError
from skillforge.reuse.task_sac import TaskSACSettings, skill_agent
from skillforge.reuse.tasks import GOAL_DISTANCE, make_task
from skillforge.rl import loop
from skillforge.rl.checkpoint import load_checkpoint
from skillforge.rl.features import feature_reader
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import SkillLibrary, policy_for

runner = CliRunner()


def weights_hash(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_position_features_read_the_simulator_state():
    cheetah = make_env("HalfCheetah-v5")
    obs, _ = cheetah.reset(seed=0)
    data = cheetah.unwrapped.data
    data.qpos[0] = 1.234  # the torso's x: not in HalfCheetah's observation
    x = feature_reader("x", "HalfCheetah-v5", obs.shape[0])
    assert x.dim == 1 and x.read(cheetah.unwrapped, obs).tolist() == pytest.approx([1.234])
    ant = make_env("Ant-v5")
    obs, _ = ant.reset(seed=0)
    ant.unwrapped.data.qpos[:2] = (-2.5, 0.75)
    xy = feature_reader("xy", "Ant-v5", obs.shape[0])
    assert xy.read(ant.unwrapped, obs).tolist() == pytest.approx([-2.5, 0.75])
    picked = feature_reader("4, 0,4", "HalfCheetah-v5", 17)  # normalised: sorted, unique
    assert picked.name == "0,4" and picked.read(None, np.arange(17.0)).tolist() == [0.0, 4.0]
    assert feature_reader("all", "HalfCheetah-v5", 17) is None


@pytest.mark.parametrize(
    ("features", "env_id", "fragment"),
    [
        ("xy", "HalfCheetah-v5", "needs the agent's x-y position"),
        ("x", "Reacher-v5", "has none"),
        ("17", "HalfCheetah-v5", "out of range"),
        ("-1", "HalfCheetah-v5", "negative"),
        ("torso", "HalfCheetah-v5", "must be all, x, xy"),
    ],
)
def test_unknown_features_are_refused(features, env_id, fragment):
    with pytest.raises(ConfigError, match=fragment):
        feature_reader(features, env_id, 17)


def test_all_features_train_as_the_whole_observation_does(tmp_path):
    # q(z|s) on every index of the observation is the run without a prior, bit for bit; a
    # stored hash of those weights would only hold on CPUs with the same matmul kernels
    whole = loop.train(tiny_config(total_steps=300), str(tmp_path / "all.pt"))
    every = tiny_config(total_steps=300, discriminator_features="0,1,2")  # Pendulum: 3
    picked = loop.train(every, str(tmp_path / "picked.pt"))
    assert weights_hash(whole.agent) == weights_hash(picked.agent)


def test_the_prior_trains_q_on_positions_and_evaluates_on_them(tmp_path):
    config = tiny_config(env_id="MountainCarContinuous-v0", discriminator_features="x")
    result = loop.train(config, str(tmp_path / "c.pt"))
    assert result.spec.feature_dim == 1 and result.spec.discriminator_features == "x"
    assert result.agent.discriminator.net[0].in_features == 1
    replay = load_checkpoint(result.checkpoint_path)["replay"]
    # the car's position is observation[0]: the stored features are the next positions
    np.testing.assert_array_equal(replay["next_features"][:, 0], replay["next_obs"][:, 0])
    library = SkillLibrary.from_checkpoint(result.checkpoint_path)
    assert library.discriminator.net[0].in_features == 1  # rebuilt from the spec alone


def test_cli_refuses_a_prior_the_env_has_not_before_writing(workdir):
    result = runner.invoke(app, ["pretrain", "halfcheetah", "--discriminator-features", "xy"])
    assert_one_line_error(result, "x-y position")
    assert not (workdir / "mlflow.db").exists()


def test_goal_task_pays_once_when_the_torso_reaches_the_goal():
    env = make_task("halfcheetah-goal")
    sides = set()
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        sides.add(info["goal_side"])
        assert obs.shape == (19,) and obs[17] == info["goal_side"]
        assert obs[18] == pytest.approx(info["goal_side"] * GOAL_DISTANCE - env.x())
    assert sides == {1.0, -1.0}  # the side is drawn per episode
    obs, info = env.reset(seed=3)
    assert env.reset(seed=3)[1]["goal_side"] == info["goal_side"]  # ... from the reset's seed
    _, reward, terminated, _, _ = env.step(np.zeros(6))
    assert reward == 0.0 and not terminated
    env.unwrapped.data.qpos[0] = info["goal_side"] * (GOAL_DISTANCE + 0.1)
    _, reward, terminated, _, step_info = env.step(np.zeros(6))
    assert reward == 1.0 and terminated and step_info["goal_reached"]
    remade = gym.make("skillforge/HalfCheetahGoal-v0")  # registered with gymnasium
    assert remade.observation_space.shape == (19,)


def test_fine_tuning_starts_exactly_at_the_skill():
    """On a task whose observation extends the skills' (the goal task), the fine-tuned
    policy's first greedy actions are the skill's own."""
    env = make_task("halfcheetah-goal")
    spec = LibrarySpec.from_env("HalfCheetah-v5", make_env("HalfCheetah-v5"), 5, 32)
    torch.manual_seed(0)
    library = SkillLibrary(spec, policy_for(spec))
    agent = skill_agent(env, library, 3, TaskSACSettings(hidden=32), alpha=0.1)
    obs = np.stack([env.reset(seed=seed)[0] for seed in range(6)]).astype(np.float32)
    expected = library.act(obs[:, :17], 3)
    np.testing.assert_allclose(agent.act(obs), expected, atol=1e-6)
    assert float(agent.sac.alpha) == pytest.approx(0.1)
    module = agent.greedy_module()
    np.testing.assert_allclose(module(torch.from_numpy(obs)).detach().numpy(), expected, atol=1e-6)


@pytest.fixture
def pendulum_library(store, tmp_path):
    return pipeline.pretrain(
        tiny_config(name="pend"), store, checkpoint_dir=tmp_path / "ck", evaluation=NO_EVALUATION
    )


def test_finetune_runs_scores_every_method_alike_and_registers_the_policy(pendulum_library, store):
    """Every task env step is paid from --steps: the selection (4 skills on 1 episode, the two
    best on 3 others: 2,000 steps), training, the last check and the comparison with the
    skill (until the budget is spent); SAC from scratch the same, validated on the same
    episodes."""
    from skillforge.app.finetune import finetune

    config = FinetuneConfig(
        total_steps=3_400,
        batch_size=32,
        learning_starts=100,
        baselines=("sac",),
        eval_episodes=2,
        validation_episodes=1,
    )
    result = finetune("pend", config, store)
    assert set(result.final_returns) == {"best-skill", "start-skill", "finetune", "sac"}
    assert result.final_returns["start-skill"] == result.skill_returns[result.skill]
    assert result.task_env_steps == {"finetune": 3_400, "sac": 3_400}
    client = MlflowClient(store, registry_uri=store)
    run = client.get_run(result.run_id)
    metrics = run.data.metrics
    assert metrics["task_env_steps/finetune"] == metrics["task_env_steps/sac"] == 3_400
    surely = metrics["validation_lower_bound/finetune"] > metrics["validation_return/start-skill"]
    assert run.data.tags["skillforge.finetune_fallback"] == str(not surely).lower()
    assert result.fallback == (not surely)
    if result.fallback:  # the skill's weights are back: it scores exactly the skill
        assert result.final_returns["finetune"] == pytest.approx(
            result.final_returns["start-skill"]
        )
    assert run.data.tags["mlflow.parentRunId"] == pendulum_library.run_id
    assert metrics["final_return/finetune"] == pytest.approx(result.final_returns["finetune"])
    # training episodes come after the selection's 2,000 steps
    assert [m.step for m in client.get_metric_history(result.run_id, "return")] == [
        2200,
        2400,
        2600,
    ]
    assert client.get_metric_history(result.run_id, "baseline/sac/validation_return")
    assert result.model_uri == "models:/pend.finetuned-Pendulum-v1/1"
    import mlflow

    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(result.model_uri)
    assert model.predict(np.zeros((3, 3), dtype=np.float32)).shape == (3, 1)


def test_finetune_and_hierarchical_pick_the_same_best_skill(pendulum_library, store):
    """One selection for both (issue 23): the same library, seed and --validation-episodes
    give the same skill; hierarchical names its deploy rule rightly, and when fine-tuning is
    not surely better the output says the skill's weights were put back."""
    common = ["--library", "pend", "--validation-episodes", "2", "--seed", "3"]
    common += ["--eval-episodes", "1", "--tracking-uri", store]
    meta = runner.invoke(app, ["hierarchical", *common, "--steps", "6000", "--envs", "2"])
    assert meta.exit_code == 0, meta.output
    assert "one-sided 99% lower bound less a 5% margin" in meta.stdout
    assert "95%" not in meta.stdout
    args = ["finetune", *common, "--steps", "4000", "--learning-starts", "100"]
    tuned = runner.invoke(app, [*args, "--batch-size", "32"])
    assert tuned.exit_code == 0, tuned.output
    client = MlflowClient(store)

    def tags(result) -> dict:
        run_id = result.stdout.split(": run ")[1].split()[0]
        return client.get_run(run_id).data.tags

    selected = tags(meta)["skillforge.selected_skill"]
    assert tags(tuned)["skillforge.skill"] == selected
    assert f"Fine-tuned skill {selected} on Pendulum-v1" in tuned.stdout
    fallback = tags(tuned)["skillforge.finetune_fallback"] == "true"
    assert ("the skill's own weights are put back" in tuned.stdout) == fallback


def test_a_budget_the_skill_selection_uses_up_is_said_plainly(pendulum_library, store):
    """4 skills x 8 selection episodes of 200 steps need 6,400 steps: with 2,000 the skills
    are chosen on what the budget allowed and nothing is left to compare: the output says so
    (it printed 'scored -inf' before)."""
    args = ["hierarchical", "--library", "pend", "--steps", "2000", "--eval-episodes", "1"]
    result = runner.invoke(app, [*args, "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    assert "left no whole validation episode" in result.stdout, result.stdout
    assert "inf" not in result.stdout


def test_finetune_refusals(pendulum_library, store):
    from skillforge.app.finetune import finetune

    client = MlflowClient(store)

    def runs() -> int:
        return len(client.search_runs([e.experiment_id for e in client.search_experiments()]))

    before = runs()
    with pytest.raises(ConfigError, match="out of range"):
        finetune("pend", FinetuneConfig(skill="4", total_steps=10, learning_starts=0), store)
    with pytest.raises(Exception, match="was learned on Pendulum-v1"):
        config = FinetuneConfig(task="halfcheetah-goal", total_steps=10, learning_starts=0)
        finetune("pend", config, store)
    # the default --learning-starts 10,000 holds the policy still for longer than 2,000 steps
    result = runner.invoke(app, ["finetune", "--library", "pend", "--steps", "2000"])
    assert_one_line_error(result, "--learning-starts 10,000", "pass e.g. --learning-starts 500")
    assert runs() == before  # refusals create no run
    with pytest.raises(ConfigError, match="--skill must be"):
        FinetuneConfig(skill="fast")
    with pytest.raises(ConfigError, match="--validation-episodes"):
        FinetuneConfig(validation_episodes=-1)


def test_save_then_import_gives_the_same_skills_and_registered_models(
    pendulum_library, store, tmp_path, workdir
):
    path = save_library("pend", tmp_path / "pend.pt", store)
    assert path.stat().st_size < 1_000_000
    state = torch.load(path, weights_only=True)  # weights only: no pickled code
    assert "replay" not in state and "optimizer" not in state
    other = f"sqlite:///{tmp_path / 'other.db'}"
    imported = import_library(path, "pend-copy", other, checkpoint_dir=tmp_path / "other-ck")
    obs = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    skills = np.arange(32) % 4
    np.testing.assert_allclose(
        imported.library.act(obs, skills), pendulum_library.library.act(obs, skills), atol=1e-6
    )
    assert imported.models == [f"models:/pend-copy.skill-{k:02d}/1" for k in range(4)]
    assert imported.library_model == "models:/pend-copy/1"
    mlflow.set_tracking_uri(other)
    library_model = mlflow.pyfunc.load_model(imported.library_model)
    np.testing.assert_allclose(
        library_model.predict({"observation": obs, "skill": skills}),
        pendulum_library.library.act(obs, skills),
        atol=1e-5,
    )
    client = MlflowClient(other, registry_uri=other)
    assert client.get_run(imported.run_id).data.tags["skillforge.status"] == "finished"
    with pytest.raises(ConfigError, match="already exists"):
        save_library("pend", path, store)
    with pytest.raises(Exception, match="already exists"):
        import_library(path, "pend-copy", other, checkpoint_dir=tmp_path / "other-ck")
    with pytest.raises(ConfigError, match="cannot be trained further"):
        pipeline.resume("pend-copy", other, total_steps=600)


def crafted(path, payload):
    with open(path, "wb") as handle:
        pickle.dump(payload, handle)
    return path


@pytest.mark.parametrize("kind", ["truncated", "empty", "foreign", "code", "checkpoint"])
def test_bad_library_files_are_refused_and_nothing_is_registered(
    pendulum_library, store, tmp_path, kind, monkeypatch
):
    good = save_library("pend", tmp_path / "good.pt", store)
    bad = tmp_path / f"{kind}.pt"
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    if kind == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, bad)
    elif kind == "code":
        crafted(bad, {"format": "skillforge-checkpoint", "x": Exploit()})
    else:
        bad = pendulum_library.checkpoint_path  # a training checkpoint is not a library file
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    result = runner.invoke(app, ["library", "import", str(bad), "--name", "x"])
    assert_one_line_error(result)
    assert not marker.exists()
    assert not (other / "mlflow.db").exists() and not (other / "checkpoints").exists()
    with pytest.raises(CheckpointError):
        read_library_file(bad)


def test_pretrain_config_keeps_the_prior_normalised():
    config = PretrainConfig(env_id="Hopper-v5", discriminator_features=" X ")
    assert config.discriminator_features == "x"
    assert config.to_params()["discriminator_features"] == "x"
    assert PretrainConfig.from_dict({"env_id": "Hopper-v5"}).discriminator_features == "all"
