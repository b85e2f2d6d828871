"""Every command on a METRA library: pretrain -> evaluate -> export -> serve -> hierarchical ->
finetune, on a tiny real one (Pendulum, 3 skills), through the CLI and a real server process."""

import json
import sys

import numpy as np
import onnxruntime as ort
from helpers import post_json, serving
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.app.load import load_library
from skillforge.store import tracking
from skillforge.store.ui_server import free_port

PRETRAIN = "pretrain pendulum --objective metra --skills 3 --steps 1200 --learning-starts 200"
PRETRAIN += " --hidden 16 --batch-size 32 --envs 2 --updates-per-step 0.5 --eval-episodes 1"
PRETRAIN += " --no-video --name met --threads 1"


def run(runner: CliRunner, command: str, store: str):
    result = runner.invoke(app, [*command.split(), "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    return result


def test_a_metra_library_goes_through_every_command(store, tmp_path):
    runner = CliRunner()
    run(runner, PRETRAIN, store)
    run_id = tracking.find_library("met", store).run_id
    stored = MlflowClient(store).get_run(run_id).data
    assert stored.params["objective"] == "metra" and stored.params["envs"] == "2"
    assert "phi_step_squared" in stored.metrics and "log_q_z" not in stored.metrics
    library = load_library("met", store)
    assert library.discriminator is None

    shown = run(runner, "evaluate met --episodes 2", store)
    assert "best skill" in shown.output

    out = tmp_path / "onnx"
    run(runner, f"export met --out {out}", store)
    session = ort.InferenceSession(str(out / "library.onnx"), providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    skills = np.array([0, 1, 2, 1])
    onnx_actions = session.run(None, {"observation": obs, "skill": skills})[0]
    np.testing.assert_allclose(onnx_actions, library.act(obs, skills), atol=1e-5)

    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", "met", "--port", str(port)]
    with serving([*command, "--tracking-uri", store], port):
        body = json.dumps({"inputs": {"observation": obs.tolist(), "skill": skills.tolist()}})
        status, answer = post_json(port, body.encode())
    assert status == 200
    np.testing.assert_allclose(answer["predictions"], library.act(obs, skills), atol=1e-5)

    options = "--steps 3000 --eval-episodes 1 --validation-episodes 1 --threads 1"
    hierarchical = run(runner, f"hierarchical --library met {options} --skill-steps 10", store)
    assert "deploys" in hierarchical.output
    finetuned = run(runner, f"finetune --library met {options} --learning-starts 500", store)
    assert "fine-tun" in finetuned.output
