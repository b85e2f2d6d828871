"""What `register_skills` registers now that it exports a library's skills once and reads
the run and the registry once per library, checked as a user of the store sees it: every
skill is a registered model with its tags and description, a version linked to the run and
to its logged model, loading with plain MLflow and giving the PyTorch skill's actions; a
registration cut short is completed without registering anything twice."""

import json

import mlflow
import numpy as np
import pytest
import torch
from mlflow.entities import LoggedModelStatus

from skillforge.core.envs import make_env
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import SkillLibrary, library_tags, policy_for
from skillforge.store import registry, tracking

N_SKILLS = 5


@pytest.fixture(scope="module")
def library() -> SkillLibrary:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = LibrarySpec.from_env("Pendulum-v1", make_env("Pendulum-v1"), N_SKILLS, hidden=32)
    return SkillLibrary(spec, policy_for(spec), name="speedy")


@pytest.fixture
def run(store):
    """A library run as pretraining leaves it: params, metrics (one at step 0), active."""
    client = tracking.connect(store)
    experiment_id = tracking.ensure_experiment(client, tracking.DEFAULT_EXPERIMENT)
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "env_id", "Pendulum-v1")
    client.log_metric(run_id, "warmup_return", -3.0, step=0)
    client.log_metric(run_id, "log_q_z", -1.5, step=300)
    with mlflow.start_run(run_id=run_id):
        yield client, run_id


def example() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)


def logged_models(client, run_id: str) -> list:
    experiment_id = client.get_run(run_id).info.experiment_id
    return client.search_logged_models([experiment_id])


def test_every_skill_is_registered_with_its_tags_and_gives_the_skill_actions(library, run):
    client, run_id = run
    uris = registry.register_skills(client, library, run_id, example(), step=300)
    assert uris == [f"models:/speedy.skill-{k:02d}/1" for k in range(N_SKILLS)]
    observations = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    for skill, uri in enumerate(uris):
        name = f"speedy.skill-{skill:02d}"
        tags = {**library_tags(library, run_id), "step": "300", "skill": str(skill)}
        model = client.get_registered_model(name)
        assert model.tags == tags
        assert model.description.startswith(f"Skill {skill} of {N_SKILLS} of library speedy ")
        assert f"run {run_id}" in model.description
        (version,) = client.search_model_versions(f"name = '{name}'")
        assert version.tags == tags and version.run_id == run_id
        model_id = version.source.removeprefix("models:/")
        logged = client.get_logged_model(model_id)
        assert logged.name == f"skill-{skill:02d}" and logged.source_run_id == run_id
        assert logged.status == LoggedModelStatus.READY
        assert logged.params == {"env_id": "Pendulum-v1"}
        link = json.loads(logged.tags["mlflow.modelVersions"])
        assert link == [{"name": name, "version": "1"}]
        assert [(m.key, m.value, m.step) for m in logged.metrics] == [("warmup_return", -3.0, 0)]

        loaded = mlflow.pyfunc.load_model(uri)
        assert loaded.metadata.get_input_schema().inputs[0].shape == (-1, 3)
        assert loaded.metadata.saved_input_example_info is not None
        assert loaded.metadata.model_id == model_id
        assert loaded.metadata.run_id == run_id
        assert "pytorch" in loaded.metadata.flavors
        for rows in (1, 7):  # a dynamic batch
            actions = np.asarray(loaded.predict(observations[:rows]))
            expected = library.act(observations[:rows], skill)
            np.testing.assert_allclose(actions, expected, rtol=0, atol=1e-6)
        with torch.no_grad():
            module = library.skill(skill)(torch.from_numpy(observations)).numpy()
        np.testing.assert_allclose(loaded.predict(observations), module, rtol=0, atol=1e-6)
    run_models = client.get_run(run_id).outputs.model_outputs
    assert sorted(output.model_id for output in run_models) == sorted(
        m.model_id for m in logged_models(client, run_id)
    )


def test_a_registration_cut_short_is_completed_without_registering_anything_twice(library, run):
    client, run_id = run

    def killed_after_skill_1(skill: int) -> None:
        if skill == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        registry.register_skills(client, library, run_id, example(), 300, killed_after_skill_1)
    assert len(logged_models(client, run_id)) == 2
    assert not client.search_model_versions("name = 'speedy.skill-02'")
    # and a kill between describing a skill model and registering its version
    client.create_registered_model("speedy.skill-03")

    seen = []
    uris = registry.register_skills(client, library, run_id, example(), 300, seen.append)
    assert seen == list(range(N_SKILLS))
    assert uris == [f"models:/speedy.skill-{k:02d}/1" for k in range(N_SKILLS)]
    assert len(logged_models(client, run_id)) == N_SKILLS
    for skill in range(N_SKILLS):
        name = f"speedy.skill-{skill:02d}"
        (version,) = client.search_model_versions(f"name = '{name}'")
        assert version.tags["step"] == "300" and version.tags["skill"] == str(skill)
        assert client.get_registered_model(name).tags == version.tags
        assert client.get_registered_model(name).description.startswith(f"Skill {skill} of")

    again = registry.register_skills(client, library, run_id, example(), 300)
    assert again == uris and len(logged_models(client, run_id)) == N_SKILLS


def test_a_later_step_of_the_run_is_a_new_version_and_the_model_tags_follow(library, run):
    client, run_id = run
    registry.register_skills(client, library, run_id, example(), step=300)
    uris = registry.register_skills(client, library, run_id, example(), step=600)
    assert uris == [f"models:/speedy.skill-{k:02d}/2" for k in range(N_SKILLS)]
    model = client.get_registered_model("speedy.skill-04")
    assert model.tags["step"] == "600"
    versions = client.search_model_versions("name = 'speedy.skill-04'")
    assert sorted((int(v.version), v.tags["step"]) for v in versions) == [(1, "300"), (2, "600")]
    loaded = mlflow.pyfunc.load_model(uris[4])
    np.testing.assert_allclose(loaded.predict(example()), library.act(example(), 4), atol=1e-6)


def test_a_single_module_registers_like_a_skill(library, run):
    client, run_id = run
    tags = {"library": "speedy", "run_id": run_id, "output": "action"}
    uri = registry.register_module(library.skill(2), example(), "speedy.custom", "custom", tags)
    assert uri == "models:/speedy.custom/1"
    (version,) = client.search_model_versions("name = 'speedy.custom'")
    assert version.tags == tags and version.run_id == run_id
    loaded = mlflow.pyfunc.load_model(uri)
    np.testing.assert_allclose(loaded.predict(example()), library.act(example(), 2), atol=1e-6)
