"""A library over HTTP: `skillforge serve` and `mlflow models serve` of its registered library
model, each a real server process asked by a real HTTP client (urllib)."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, post_json, serving, tiny_config
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import pretrain as pipeline
from skillforge.core.config import NO_EVALUATION
from skillforge.store.ui_server import free_port


@pytest.fixture
def library(store):
    return pipeline.pretrain(tiny_config(name="lib"), store, evaluation=NO_EVALUATION)


def request(observations, skills) -> bytes:
    """MLflow's documented request for named tensor inputs, one skill per row."""
    inputs = {"observation": np.asarray(observations).tolist(), "skill": list(skills)}
    return json.dumps({"inputs": inputs}).encode()


OBSERVATIONS = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
SKILLS = np.arange(64) % 4  # every skill, interleaved


def test_skillforge_serve_answers_every_skill_and_refuses_bad_requests_in_one_line(library, store):
    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", "lib", "--port", str(port)]
    command += ["--tracking-uri", store]
    expected = library.library.act(OBSERVATIONS, SKILLS)
    with serving(command, port) as server:
        status, answer = post_json(port, request(OBSERVATIONS, SKILLS.tolist()))
        assert status == 200
        np.testing.assert_allclose(np.array(answer["predictions"]), expected, atol=1e-5)
        status, answer = post_json(port, request(OBSERVATIONS[5:6], [1]))  # one observation
        np.testing.assert_allclose(answer["predictions"], expected[5:6], atol=1e-5)
        good = request(OBSERVATIONS[:2], [3, 0])
        nan = b'{"inputs": {"observation": [[NaN, 0.0, 0.0]], "skill": [0]}}'
        for body, content_type, expected_status, fragment in (
            (b'{"inputs": {"observation": [[1.0, 0', "application/json", 400, "malformed JSON"),
            (request(np.zeros((1, 4)), [0]), "application/json", 400, "got [1, 4]"),
            (
                request(OBSERVATIONS[:2], [0, 4]),
                "application/json",
                400,
                "skill 4 out of range 0..3",
            ),
            (request(OBSERVATIONS[:1], [-1]), "application/json", 400, "skill -1 out of range"),
            (request(OBSERVATIONS[:1], [1.5]), "application/json", 400, "whole numbers"),
            (nan, "application/json", 400, "observation holds NaN"),
            (request(OBSERVATIONS[:2], [0]), "application/json", 400, "one row per observation"),
            (b'{"observation": [[1.0, 0.0, 0.0]]}', "application/json", 400, '{"inputs":'),
            (good, "text/plain", 415, "Content-Type: application/json"),
        ):
            status, answer = post_json(port, body, content_type)
            assert status == expected_status and fragment in answer["message"], answer
            assert "\n" not in answer["message"]
            assert post_json(port, good)[0] == 200  # and the server goes on serving
        taken = CliRunner().invoke(app, command[3:])  # the same port again
        assert_one_line_error(taken, f"cannot listen on 127.0.0.1 port {port}")
    out, err = server.stopped_output
    assert server.returncode == 0 and "Stopped." in err and "Traceback" not in err
    assert f"Serving models:/lib/1 at http://127.0.0.1:{port}/invocations" in out


def test_serve_refuses_what_it_cannot_serve_in_one_line(library, store):
    runner = CliRunner()
    for args, fragment in (
        (["nope"], "no library named 'nope'"),
        (["models:/lib.skill-00/1"], "is not a library or agent model"),
        (["models:/lib@nobody"], "no registered model models:/lib@nobody"),
        (["lib", "--port", "0"], "--port must be in 1..65535"),
    ):
        result = runner.invoke(app, ["serve", *args, "--tracking-uri", store])
        assert_one_line_error(result, fragment)


def test_mlflow_models_serve_takes_the_documented_request(library, store):
    port = free_port()
    bin_dir = Path(sys.executable).parent  # mlflow execs uvicorn from the same environment
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["MLFLOW_TRACKING_URI"] = store
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/lib/1"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with serving(command, port, env):
        status, answer = post_json(port, request(OBSERVATIONS, SKILLS.tolist()))
        assert status == 200
        expected = library.library.act(OBSERVATIONS, SKILLS)
        np.testing.assert_allclose(np.array(answer["predictions"]), expected, atol=1e-5)
        status, answer = post_json(port, request(OBSERVATIONS[:2], [0, 4]))
        assert status == 400 and "skill 4 out of range 0..3" in answer["message"]
        assert post_json(port, request(OBSERVATIONS[:2], [0, 1]))[0] == 200
