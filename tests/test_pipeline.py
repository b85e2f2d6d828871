"""End to end on a real sqlite store: pretrain, registry contents, plain-MLflow loading, resume."""

import mlflow
import numpy as np
import pytest
import torch
from helpers import assert_one_line_error, tiny_config
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import pretrain as pipeline
from skillforge.app.load import load_library
from skillforge.core.errors import ConfigError, LibraryNotFound
from skillforge.skills.sources import RegistrySkills
from skillforge.store import tracking


@pytest.fixture
def finished(store):
    return pipeline.pretrain(tiny_config(name="pend-a"), store)


def test_one_run_is_one_library_with_every_skill_registered(finished, store):
    client = MlflowClient(store)
    run = client.get_run(finished.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["env_id"] == "Pendulum-v1" and params["n_skills"] == "4"
    assert params["torch_version"] and params["mlflow_version"] and params["skillforge_version"]
    expected_metrics = (
        "discriminator_loss discriminator_accuracy log_q_z intrinsic_reward critic_loss "
        "actor_loss alpha entropy steps_per_second extrinsic_return eval/best_skill_return"
    )
    for key in expected_metrics.split():
        assert key in run.data.metrics, key
    steps = [m.step for m in client.get_metric_history(finished.run_id, "log_q_z")]
    assert steps == [150, 200, 250, 300]
    artifacts = {a.path for a in client.list_artifacts(finished.run_id, "plots")}
    assert artifacts == {
        f"plots/{name}.png"
        for name in ("learning_curve", "confusion_matrix", "skill_returns", "trajectories")
    }
    videos = {a.path for a in client.list_artifacts(finished.run_id, "videos")}
    assert "videos/all_skills.gif" in videos and "videos/skill_03.gif" in videos
    assert run.data.metrics["eval/episodes"] == 5
    assert client.list_artifacts(finished.run_id, "checkpoint")[0].file_size > 0

    assert finished.models == [f"models:/pend-a.skill-{k:02d}/1" for k in range(4)]
    model = client.get_registered_model("pend-a.skill-02")
    assert model.tags["skill"] == "2" and model.tags["library"] == "pend-a"
    assert model.tags["env_id"] == "Pendulum-v1" and model.tags["n_skills"] == "4"
    assert model.tags["observation_shape"] == "[3]" and model.tags["action_shape"] == "[1]"
    assert model.tags["action_low"] == "[-2.0]" and model.tags["run_id"] == finished.run_id


def test_registered_skill_loads_with_plain_mlflow_and_matches_the_policy(finished, store):
    mlflow.set_tracking_uri(store)
    observations = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    for skill in (0, 3):
        model = mlflow.pyfunc.load_model(f"models:/pend-a.skill-{skill:02d}/1")
        for rows in (1, 4, 6):  # the batch dimension is dynamic
            actions = np.asarray(model.predict(observations[:rows]))
            expected = finished.library.act(observations[:rows], skill)
            np.testing.assert_allclose(actions, expected, atol=1e-6)
            assert np.all(np.abs(actions) <= 2.0)


def test_the_library_model_runs_every_skill_row_by_row_with_plain_mlflow(finished, store):
    client = MlflowClient(store)
    assert finished.library_model == "models:/pend-a/1"
    library_tags = client.get_registered_model("pend-a").tags
    skill_tags = client.get_registered_model("pend-a.skill-02").tags
    assert library_tags == {**skill_tags, "skill": "all"}  # the same tags as the skills
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(finished.library_model)
    schema = model.metadata.get_input_schema()
    assert schema.input_names() == ["observation", "skill"]
    assert [spec.shape for spec in schema.inputs] == [(-1, 3), (-1,)]
    assert model.metadata.saved_input_example_info is not None  # real observations
    observations = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    skills = np.array([3, 0, 2, 1, 1, 3, 0, 2])
    for rows in (1, 8):  # a dynamic batch, each row its own skill
        inputs = {"observation": observations[:rows], "skill": skills[:rows]}
        expected = finished.library.act(observations[:rows], skills[:rows])
        np.testing.assert_allclose(model.predict(inputs), expected, atol=1e-5)
    for bad, message in (
        ({"observation": observations[:2], "skill": np.array([0, 4])}, "skill 4 out of range 0..3"),
        ({"observation": observations[:2], "skill": np.array([0, -1])}, "skill -1 out of range"),
        ({"observation": observations[:2] * np.nan, "skill": skills[:2]}, "NaN"),
        ({"observation": observations[:2], "skill": skills[:3]}, "one row per observation"),
    ):
        with pytest.raises(MlflowException, match=message):
            model.predict(bad)


def test_library_listing_and_lookup(finished, store):
    libraries = tracking.list_libraries(store)
    assert [lib.name for lib in libraries] == ["pend-a"]
    info = libraries[0]
    assert (info.env_id, info.n_skills, info.step) == ("Pendulum-v1", 4, 300)
    assert info.status == "finished"
    assert tracking.find_library(finished.run_id, store).name == "pend-a"
    assert tracking.find_library("latest", store).run_id == finished.run_id
    with pytest.raises(LibraryNotFound, match="pend-a"):
        tracking.find_library("nope", store)
    loaded = load_library("pend-a", store)
    obs = np.zeros((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded.act(obs, 1), finished.library.act(obs, 1))


def test_a_taken_name_is_refused(finished, store):
    with pytest.raises(ConfigError, match="already exists"):
        pipeline.pretrain(tiny_config(name="pend-a"), store)


def test_default_store_is_sqlite_in_the_working_directory(workdir):
    assert tracking.resolve_tracking_uri() == f"sqlite:///{workdir / 'mlflow.db'}"
    (workdir / "mlruns").mkdir()
    (workdir / "mlruns" / "meta.yaml").write_text("stale file store\n")
    assert tracking.resolve_tracking_uri().startswith("sqlite:///")
    assert tracking.list_libraries() == []


def test_missing_store_library_is_a_clear_error(store):
    with pytest.raises(LibraryNotFound, match="skillforge pretrain"):
        tracking.find_library(None, store)


def test_resume_extends_a_finished_library_in_the_same_run(finished, store):
    with pytest.raises(ConfigError, match="larger --steps"):
        pipeline.resume("pend-a", store)
    extended = pipeline.resume("pend-a", store, total_steps=400)
    assert extended.run_id == finished.run_id
    history = MlflowClient(store).get_metric_history(finished.run_id, "log_q_z")
    assert max(m.step for m in history) == 400
    with pytest.raises(ConfigError, match="trained on Pendulum-v1"):
        pipeline.resume("pend-a", store, total_steps=500, expected_env="hopper")
    # the extended library is version 2 of the library model; an alias can keep version 1
    assert extended.library_model == "models:/pend-a/2"
    runner = CliRunner()
    promote = ["library", "promote", "models:/pend-a/1", "--alias", "champion"]
    promoted = runner.invoke(app, [*promote, "--tracking-uri", store])
    assert promoted.stdout.strip() == "models:/pend-a@champion -> version 1", promoted.output
    info = tracking.find_library("models:/pend-a@champion", store)
    assert (info.name, info.model_uri) == ("pend-a", "models:/pend-a/1")
    assert tracking.find_library("models:/pend-a.skill-02/2", store).model_uri == ""
    obs = np.random.default_rng(2).normal(size=(16, 3)).astype(np.float32)
    skills, spec = np.arange(16) % 4, finished.library.spec
    champion = RegistrySkills.load("pend-a", spec, store, info.model_uri)
    newest = RegistrySkills.load("pend-a", spec, store)
    expected = finished.library.act(obs, skills), extended.library.act(obs, skills)
    assert np.abs(expected[0] - expected[1]).max() > 1e-3  # 100 more steps changed the skills
    np.testing.assert_allclose(champion.act(obs, skills), expected[0], atol=1e-5)
    np.testing.assert_allclose(newest.act(obs, skills), expected[1], atol=1e-5)
    shown = runner.invoke(
        app, ["library", "show", "models:/pend-a@champion", "--tracking-uri", store]
    )
    assert "library model models:/pend-a/2 (@champion -> 1)" in shown.stdout, shown.output
    for args, fragment in (
        (["promote", "pend-a", "--alias", "latest"], "not an alias MLflow takes"),
        (["promote", "pend-a", "--alias", "next", "--version", "9"], "has no version '9'"),
        (["show", "models:/pend-a@nobody"], "no registered model models:/pend-a@nobody"),
        (["show", "models:/pend-a"], "is not a model URI"),
    ):
        assert_one_line_error(
            runner.invoke(app, ["library", *args, "--tracking-uri", store]), fragment
        )


def test_resume_trains_on_the_threads_it_is_given_not_the_run_s(finished, store):
    previous = torch.get_num_threads()
    try:
        pipeline.resume("pend-a", store, total_steps=400, threads=2)  # the run had 1
        assert torch.get_num_threads() == 2
        pipeline.resume("pend-a", store, total_steps=500)  # not given: the run's own, now 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_resume_refuses_a_thread_count_the_machine_cannot_use_even_with_training_done(
    finished, store
):
    """pend-a's training is done: the thread count is still checked, before the run is read
    further (its evaluation and registration would run on it)."""
    with pytest.raises(ConfigError, match="--threads 100000 is not a thread count"):
        pipeline.resume("pend-a", store, threads=100_000)


def test_commands_open_the_store_once(finished, store, monkeypatch):
    """One store handle is passed down: evaluate, show and export connect (probe, lock,
    schema check) once each."""
    from skillforge.app.evaluate import evaluate_stored
    from skillforge.app.export import export_saved_library
    from skillforge.app.library import show_library

    opened = []
    real_connect = tracking.connect

    def counting_connect(uri=None):
        opened.append(uri)
        return real_connect(uri)

    monkeypatch.setattr(tracking, "connect", counting_connect)
    evaluate_stored("pend-a", store, episodes=1, video=False)
    assert len(opened) == 1
    show_library("pend-a", store)
    assert len(opened) == 2
    export_saved_library("pend-a", tracking_uri=store)
    assert len(opened) == 3


def test_an_episode_budget_ends_the_run_after_that_many_episodes(store):
    """`--episodes 3` on Pendulum (200-step episodes): the run ends after exactly 3 episodes,
    600 steps, records them as its total, reports the episode count, counts its progress in
    episodes (never against the step cap its budget implies), and `--resume --episodes 4`
    continues it by one more episode."""
    runner = CliRunner()
    args = ["pretrain", "pendulum", "--skills", "3", "--episodes", "3", "--hidden", "16"]
    args += ["--batch-size", "16", "--learning-starts", "0", "--eval-episodes", "1"]
    result = runner.invoke(app, [*args, "--no-video", "--name", "ep", "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    line = next(text for text in result.output.splitlines() if text.startswith("DIAYN "))
    assert line.startswith("DIAYN 3/3 (100%) ") and " episodes/s " in line, line
    assert "600 steps" in line and "/3,000" not in line
    client = MlflowClient(store)
    run = client.get_run(tracking.find_library("ep", store).run_id)
    assert run.data.tags[tracking.TAG_TOTAL_STEPS] == "600"
    assert run.data.params["total_episodes"] == "3"
    episodes = client.get_metric_history(run.info.run_id, "episodes")
    assert max((m.step, m.value) for m in episodes) == (600, 3.0)
    extended = pipeline.resume("ep", store, total_episodes=4)
    assert extended.run_id == run.info.run_id
    assert client.get_run(run.info.run_id).data.tags[tracking.TAG_TOTAL_STEPS] == "800"
    refused = runner.invoke(app, ["pretrain", "pendulum", "--episodes", "0"])
    assert_one_line_error(refused, "--episodes must be positive")


def test_a_minutes_budget_shows_progress_against_time(store):
    """`--minutes` alone: no step total to count against, so the progress line gives the share
    and ETA of the time budget, never the uncapped step count, and the library finishes."""
    args = ["pretrain", "pendulum", "--skills", "3", "--minutes", "0.1", "--hidden", "16"]
    args += ["--batch-size", "16", "--learning-starts", "100", "--eval-episodes", "1"]
    result = CliRunner().invoke(
        app, [*args, "--no-video", "--name", "timed", "--tracking-uri", store]
    )
    assert result.exit_code == 0, result.output
    line = next(text for text in result.output.splitlines() if text.startswith("DIAYN "))
    assert "(100%)" in line and "ETA 0:00:00" in line and "1,000,000,000,000" not in line
    run = MlflowClient(store).get_run(tracking.find_library("timed", store).run_id)
    assert int(run.data.tags[tracking.TAG_TOTAL_STEPS]) < 10**12  # the steps it took
