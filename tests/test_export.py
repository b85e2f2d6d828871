"""Export: ONNX and TorchScript files that act like the PyTorch policy, self-describing,
written all at once or not at all; the CLI's refusals; the README example."""

import copy
import errno
import hashlib
import json
import os
import shlex
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import mlflow
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from helpers import assert_one_line_error, tiny_config
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge import export_library, export_saved_library
from skillforge.app import pretrain as pipeline
from skillforge.core.config import NO_EVALUATION
from skillforge.core.errors import ExportError
from skillforge.export import writer as export_module
from skillforge.export.parity import PARITY_REAL_OBSERVATIONS, parity_observations
from skillforge.skills.library import SkillLibrary, SkillPolicy

runner = CliRunner()
NAME = "my-pendulum"  # the README's library
TOLERANCE = 1e-4


def readme_export_blocks() -> tuple[list[str], str]:
    """The docs' export example (docs/commands/export.md): its shell block and the Python block
    that reads the files."""
    from test_readme import DOCS, documented_examples

    blocks = [
        example for example in documented_examples() if example.page == DOCS / "commands/export.md"
    ]
    shell = next(
        code
        for _, kind, code in blocks
        if kind == "shell" and "skillforge export my-pendulum" in code
    )
    python = next(code for _, kind, code in blocks if kind == "python" and "library.onnx" in code)
    return shell.strip().splitlines(), python


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny library in a real sqlite store, shared by the module (pretraining costs ~5 s)."""
    folder = tmp_path_factory.mktemp("store")
    store = f"sqlite:///{folder / 'mlflow.db'}"
    result = pipeline.pretrain(
        tiny_config(name=NAME),
        store,
        checkpoint_dir=folder / "checkpoints",
        evaluation=NO_EVALUATION,
    )
    return SimpleNamespace(store=store, folder=folder, result=result, library=result.library)


@pytest.fixture(scope="module")
def onnx_export(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / NAME
    return export_saved_library(NAME, tracking_uri=trained.store, out_dir=out, log_to_mlflow=True)


def held_out_observations(rows: int = 300) -> np.ndarray:
    """Pendulum states from another seed than the export's, plus random vectors."""
    env = gym.make("Pendulum-v1")
    env.action_space.seed(123)
    obs, _ = env.reset(seed=123)
    states = []
    for _ in range(rows):
        states.append(obs)
        obs, *_ = env.step(env.action_space.sample())
    noise = np.random.default_rng(1).normal(scale=4.0, size=(rows // 3, 3))
    return np.concatenate([np.asarray(states), noise]).astype(np.float32)


def session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def invoke(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


def test_onnx_export_writes_skill_files_library_file_and_manifest(onnx_export, trained):
    out = onnx_export.out_dir
    names = [f"skill-{k:02d}.onnx" for k in range(4)] + ["library.onnx", "manifest.json"]
    assert sorted(path.name for path in out.iterdir()) == sorted(names)
    assert [path.name for path in out.parent.iterdir()] == [NAME]  # no staging folder left

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == onnx_export.manifest
    assert (manifest["library"], manifest["env_id"], manifest["n_skills"]) == (
        NAME,
        "Pendulum-v1",
        4,
    )
    assert manifest["observation_shape"] == [3] and manifest["action_shape"] == [1]
    assert manifest["action_low"] == [-2.0] and manifest["action_high"] == [2.0]
    assert manifest["source"]["run_id"] == trained.result.run_id
    assert manifest["source"]["registered_models"] == trained.result.models
    assert manifest["versions"]["onnxruntime"] == onnxruntime.__version__
    for entry in manifest["files"]:
        digest = hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest()
        assert entry["sha256"] == digest

    parity = manifest["parity"]
    assert parity["passed"] and parity["tolerance"] == TOLERANCE
    assert parity["real_observations"] >= 1000 and parity["observations"] > 1000
    assert [check["file"] for check in parity["checks"]] == names[:-1]
    assert all(0 <= check["max_abs_diff"] <= TOLERANCE for check in parity["checks"])
    assert parity["checks"][-1]["rows"] == 4 * parity["observations"]  # every skill


def test_every_onnx_file_says_what_it_is(onnx_export, trained):
    for path in sorted(onnx_export.out_dir.glob("*.onnx")):
        model = onnx.load(path)
        onnx.checker.check_model(model)
        metadata = {prop.key: prop.value for prop in model.metadata_props}
        skill = "all" if path.stem == "library" else str(int(path.stem.split("-")[1]))
        expected = {
            "env_id": "Pendulum-v1",
            "skill": skill,
            "n_skills": "4",
            "observation_shape": "[3]",
            "action_shape": "[1]",
            "action_low": "[-2.0]",
            "action_high": "[2.0]",
            "library": NAME,
            "run_id": trained.result.run_id,
            "skillforge_version": "0.1.0",
        }
        assert expected.items() <= metadata.items(), path.name
        observation = model.graph.input[0]
        assert observation.name == "observation"
        dims = observation.type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[1].dim_value == 3  # batch is a dynamic axis


def test_each_skill_file_acts_like_the_pytorch_skill(onnx_export, trained):
    observations = held_out_observations()
    actions = []
    for skill in range(4):
        skill_session = session(onnx_export.out_dir / f"skill-{skill:02d}.onnx")
        expected = trained.library.act(observations, skill)
        for rows in (1, 7, len(observations)):
            (got,) = skill_session.run(["action"], {"observation": observations[:rows]})
            assert got.shape == (rows, 1)
            np.testing.assert_allclose(got, expected[:rows], rtol=0, atol=TOLERANCE)
        actions.append(expected)
    # each file is its own skill, not skill 0 four times
    assert all(np.abs(actions[0] - other).max() > 1e-4 for other in actions[1:])


def test_the_library_file_serves_every_skill_index(onnx_export, trained):
    observations = held_out_observations()
    library_session = session(onnx_export.out_dir / "library.onnx")
    for skill in range(4):
        skills = np.full(len(observations), skill, dtype=np.int64)
        inputs = {"observation": observations, "skill": skills}
        (got,) = library_session.run(["action"], inputs)
        expected = trained.library.act(observations, skill)
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    mixed = np.arange(len(observations), dtype=np.int64) % 4
    (got,) = library_session.run(["action"], {"observation": observations, "skill": mixed})
    np.testing.assert_allclose(got, trained.library.act(observations, mixed), atol=TOLERANCE)
    with pytest.raises(Exception, match="index"):
        library_session.run(None, {"observation": observations[:1], "skill": np.array([4])})


def test_logged_onnx_models_load_with_plain_mlflow(onnx_export, trained):
    models = onnx_export.manifest["mlflow_models"]
    run_id = trained.result.run_id
    assert models == [f"runs:/{run_id}/onnx/skill-{k:02d}" for k in range(4)] + [
        f"runs:/{run_id}/onnx/library"
    ]
    assert MlflowClient(trained.store).get_run(run_id).info.status == "FINISHED"
    mlflow.set_tracking_uri(trained.store)
    observations = held_out_observations(20)
    skill_model = mlflow.pyfunc.load_model(models[3])
    got = skill_model.predict(observations)["action"]
    np.testing.assert_allclose(got, trained.library.act(observations, 3), atol=TOLERANCE)
    skills = np.arange(len(observations), dtype=np.int64) % 4
    library_model = mlflow.pyfunc.load_model(models[-1])
    got = library_model.predict({"observation": observations, "skill": skills})["action"]
    np.testing.assert_allclose(got, trained.library.act(observations, skills), atol=TOLERANCE)


def test_parity_observations_are_real_pendulum_states_then_random_ones(trained):
    observations = parity_observations(trained.library)
    real = observations[:PARITY_REAL_OBSERVATIONS]
    assert len(real) >= 1000 and len(observations) > len(real)
    # a Pendulum observation is (cos θ, sin θ, θ'): real states lie on the unit circle
    np.testing.assert_allclose(real[:, 0] ** 2 + real[:, 1] ** 2, 1.0, atol=1e-5)
    assert np.all(np.abs(real[:, 2]) <= 8.0)
    assert len(np.unique(real.round(4), axis=0)) > 900  # many states, not one repeated
    random_rows = observations[PARITY_REAL_OBSERVATIONS:]
    assert np.abs(random_rows[:, 0] ** 2 + random_rows[:, 1] ** 2 - 1).max() > 0.1


def test_torchscript_export_carries_metadata_and_matches(trained, tmp_path):
    result = export_library(trained.library, tmp_path / "ts", fmt="torchscript", skills=[1, 2])
    assert result.files == ["skill-01.pt", "skill-02.pt", "library.pt", "manifest.json"]
    manifest = result.manifest
    assert manifest["export_format"] == "torchscript" and manifest["parity"]["passed"]
    assert manifest["parity"]["real_observations"] >= 1000
    observations = torch.from_numpy(held_out_observations())
    extra = {"metadata.json": ""}
    skill = torch.jit.load(str(tmp_path / "ts" / "skill-02.pt"), _extra_files=extra)
    metadata = json.loads(extra["metadata.json"])
    assert (metadata["skill"], metadata["env_id"], metadata["n_skills"]) == (
        "2",
        "Pendulum-v1",
        "4",
    )
    with torch.no_grad():
        got = skill(observations).numpy()
        np.testing.assert_allclose(
            got, trained.library.act(observations.numpy(), 2), atol=TOLERANCE
        )
        library = torch.jit.load(str(tmp_path / "ts" / "library.pt"))
        skills = torch.arange(len(observations)) % 4
        got = library(observations, skills).numpy()
    np.testing.assert_allclose(
        got, trained.library.act(observations.numpy(), skills.numpy()), atol=TOLERANCE
    )


def test_a_parity_mismatch_fails_and_keeps_the_previous_export(trained, tmp_path):
    out = tmp_path / "out"
    export_library(trained.library, out, fmt="torchscript", skills=[0])
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    drifted_policy = copy.deepcopy(trained.library.policy)
    with torch.no_grad():
        drifted_policy.net[-1].bias += 1e-3  # an exporter bug that shifts the actions a little
    drifted = SkillLibrary(trained.library.spec, trained.library.policy, name=NAME)
    drifted.skill = lambda k: SkillPolicy(drifted_policy, k, 4).eval()
    with pytest.raises(ExportError, match="parity check failed: skill-00.onnx"):
        export_library(drifted, out, fmt="onnx", force=True)

    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert [path.name for path in tmp_path.iterdir()] == ["out"]  # no staging folder left


def test_a_failed_move_into_place_puts_the_previous_export_back(trained, tmp_path, monkeypatch):
    out = tmp_path / "out"
    export_library(trained.library, out, fmt="torchscript", skills=[0])
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    real_replace = os.replace

    def replace(source, destination):
        if str(source).endswith(".tmp"):  # the finished staging folder
            raise OSError(errno.EIO, "Input/output error")
        real_replace(source, destination)

    monkeypatch.setattr(export_module.os, "replace", replace)
    with pytest.raises(ExportError, match="cannot move the export"):
        export_library(trained.library, out, fmt="torchscript", skills=[1], force=True)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_a_library_name_cannot_leave_the_exports_folder(trained, workdir):
    escaping = SkillLibrary(trained.library.spec, trained.library.policy, name="../../escape")
    with pytest.raises(ExportError, match="pass --out"):
        export_library(escaping)
    assert list(workdir.iterdir()) == [] and not (workdir.parent / "escape").exists()


def test_force_replaces_a_previous_export_with_the_new_one(trained, workdir):
    store = ("--tracking-uri", trained.store)
    first = invoke("export", "--format", "torchscript", "--out", "out", *store)  # the latest
    assert first.exit_code == 0, first.output
    assert f"Exported {NAME} (Pendulum-v1, 4 skills)" in first.stdout
    assert_one_line_error(
        invoke("export", NAME, "--format", "torchscript", "--out", "out", "--skills", "3", *store),
        "already exists",
        "--force",
    )
    again = invoke(
        "export",
        NAME,
        "--format",
        "torchscript",
        "--out",
        "out",
        "--skills",
        "3",
        "--force",
        *store,
    )
    assert again.exit_code == 0, again.output
    assert sorted(path.name for path in (workdir / "out").iterdir()) == [
        "library.pt",
        "manifest.json",
        "skill-03.pt",
    ]
    assert [path.name for path in workdir.iterdir()] == ["out"]


def test_force_never_replaces_a_folder_that_is_not_an_export(trained, workdir):
    (workdir / "mine").mkdir()
    (workdir / "mine" / "thesis.tex").write_text("precious")
    result = invoke("export", NAME, "--out", "mine", "--force", "--tracking-uri", trained.store)
    assert_one_line_error(result, "not a skillforge export")
    assert (workdir / "mine" / "thesis.tex").read_text() == "precious"


def test_export_from_a_checkpoint_file(trained, workdir):
    checkpoint = trained.result.checkpoint_path
    result = invoke("export", "--from-checkpoint", checkpoint, "--format", "torchscript")
    assert result.exit_code == 0, result.output
    assert f"Exported {NAME} (Pendulum-v1, 4 skills) as torchscript" in result.stdout
    manifest = json.loads((workdir / "exports" / NAME / "manifest.json").read_text())
    assert manifest["source"] == {"run_id": "", "checkpoint": checkpoint}
    assert manifest["parity"]["passed"]


def test_threads_reach_torch_and_the_onnx_sessions(trained, workdir):
    from skillforge.skills.onnx_session import onnx_session

    previous = torch.get_num_threads()
    try:
        checkpoint = trained.result.checkpoint_path
        result = invoke("export", "--from-checkpoint", checkpoint, "--threads", "1")
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
        session = onnx_session(workdir / "exports" / NAME / "library.onnx")
        assert session.get_session_options().intra_op_num_threads == 1
    finally:
        torch.set_num_threads(previous)


REFUSALS = [
    (["nope"], ["no library named 'nope'", NAME]),
    ([NAME, "--format", "tflite"], ["unknown format 'tflite'", "onnx, torchscript"]),
    ([NAME, "--skills", "0,9"], ["skill 9 out of range", "0..3"]),
    ([NAME, "--skills", "zero"], ["--skills"]),
    ([NAME, "--out", "{existing}"], ["already exists", "--force"]),
    ([NAME, "--out", "{file}/sub"], ["cannot write to", "a file is in the way"]),
    (["--from-checkpoint", "{corrupt}"], ["truncated or corrupt"]),
    ([NAME, "--from-checkpoint", "{checkpoint}"], ["not both"]),
    (["--from-checkpoint", "{checkpoint}", "--log-to-mlflow"], ["MLflow store"]),
    ([NAME, "--format", "torchscript", "--log-to-mlflow"], ["--format onnx"]),
]


@pytest.mark.parametrize("args, fragments", REFUSALS)
def test_refusals_are_one_line_and_write_nothing(trained, workdir, args, fragments):
    (workdir / "existing").mkdir()
    (workdir / "existing" / "keep.txt").write_text("keep")
    (workdir / "file").write_text("a file, not a folder")
    checkpoint = Path(trained.result.checkpoint_path).read_bytes()
    (workdir / "corrupt.pt").write_bytes(checkpoint[: len(checkpoint) // 2])
    before = sorted(workdir.rglob("*"))
    paths = {
        "existing": workdir / "existing",
        "file": workdir / "file",
        "corrupt": workdir / "corrupt.pt",
        "checkpoint": trained.result.checkpoint_path,
    }
    args = [arg.format(**paths) for arg in args]
    result = invoke("export", *args, "--tracking-uri", trained.store)
    assert_one_line_error(result, *fragments)
    assert sorted(workdir.rglob("*")) == before
    assert (workdir / "existing" / "keep.txt").read_text() == "keep"


def test_readme_example_runs(trained, monkeypatch):
    monkeypatch.chdir(trained.folder)  # the README's folder: ./mlflow.db holds my-pendulum
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shell, python = readme_export_blocks()
    for line in shell:
        command = shlex.split(line)
        assert command[0] == ".venv/bin/skillforge"
        result = runner.invoke(app, command[1:])
        assert result.exit_code == 0, result.output
        assert f"as onnx to {trained.folder / 'exports' / NAME}" in result.stdout
    namespace: dict = {}
    exec(python, namespace)
    observations = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]], dtype=np.float32)
    expected = trained.library.act(observations, np.array([2, 3]))
    np.testing.assert_allclose(namespace["action"], expected, atol=TOLERANCE)
    assert namespace["metadata"]["env_id"] == "Pendulum-v1"
