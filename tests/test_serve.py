"""A library over HTTP: `skillforge serve` and `mlflow models serve` of its registered library
model, each a real server process asked by a real HTTP client (urllib)."""

import http.client
import json
import os
import re
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import assert_one_line_error, post_json, serving, tiny_config
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import pretrain as pipeline
from skillforge.core.config import NO_EVALUATION
from skillforge.store.graph_model import CheckedGraph
from skillforge.store.model_server import RequestError, predictions
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
        beyond_float32 = "observation holds numbers beyond float32 (largest 3.403e+38)"
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
            (request([[1e40, 0.0, 0.0]], [0]), "application/json", 400, beyond_float32),
            (request([[0.0, -3.5e38, 0.0]], [2]), "application/json", 400, beyond_float32),
            (request(OBSERVATIONS[:2], [0]), "application/json", 400, "one row per observation"),
            (b'{"observation": [[1.0, 0.0, 0.0]]}', "application/json", 400, '{"inputs":'),
            (good, "text/plain", 415, "Content-Type: application/json"),
        ):
            status, answer = post_json(port, body, content_type)
            assert status == expected_status and fragment in answer["message"], answer
            assert "\n" not in answer["message"]
            assert post_json(port, good)[0] == 200  # and the server goes on serving
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for pause in (0, 6):  # a connection idle for a while is kept (uvicorn's default: 5 s)
            time.sleep(pause)
            kept.request("POST", "/invocations", good, {"Content-Type": "application/json"})
            assert kept.getresponse().read().startswith(b'{"predictions": ')
        kept.close()
        taken = CliRunner().invoke(app, command[3:])  # the same port again
        assert_one_line_error(taken, f"cannot listen on 127.0.0.1 port {port}")
    out, err = server.stopped_output
    assert server.returncode == 0 and "Stopped." in err and "Traceback" not in err
    assert f"Serving models:/lib/1 at http://127.0.0.1:{port}/invocations" in out


def test_skillforge_serve_answers_many_clients_connecting_at_once(library, store):
    """64 clients, each on a new connection, all at once: every one is answered (the old
    http.server queued 5 connections, dropped the rest, and the clients waited 1 s or got a
    reset)."""
    port = free_port()
    command = [sys.executable, "-m", "cli.main", "serve", "lib", "--port", str(port)]
    command += ["--tracking-uri", store]
    clients = 64
    expected = library.library.act(OBSERVATIONS[:clients], SKILLS[:clients])
    answers: dict[int, tuple[int, dict] | Exception] = {}
    start = threading.Barrier(clients)

    def client(i: int) -> None:
        body = request(OBSERVATIONS[i : i + 1], [int(SKILLS[i])])
        start.wait()
        try:
            answers[i] = post_json(port, body)
        except Exception as error:  # a reset connection: recorded, asserted below
            answers[i] = error

    with serving(command, port):
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for i in range(clients):
        assert isinstance(answers[i], tuple), f"client {i}: {answers[i]!r}"
        status, answer = answers[i]
        assert status == 200, answer
        np.testing.assert_allclose(answer["predictions"], expected[i : i + 1], atol=1e-5)


def sqrt_graph(folder: Path) -> CheckedGraph:
    """A real ONNX graph answering the square root of its observation: NaN for a negative
    entry, a model fault no trained library is known to produce."""
    helper = onnx.helper
    shape = ["batch", 3]
    graph = helper.make_graph(
        [helper.make_node("Sqrt", ["observation"], ["action"])],
        "sqrt",
        [helper.make_tensor_value_info("observation", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("action", onnx.TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, folder / "sqrt.onnx")
    return CheckedGraph(str(folder / "sqrt.onnx"))


def test_an_answer_is_always_json_without_nan_or_infinity(tmp_path):
    graph = sqrt_graph(tmp_path)
    good = b'{"inputs": {"observation": [[4.0, 0.25, 0.0]]}}'
    assert json.loads(predictions(graph, good)) == {"predictions": [[2.0, 0.5, 0.0]]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflowing cast warned before it was checked
        for body, fragment in (
            (b'{"inputs": {"observation": [[4.0, -1.0, 0.0]]}}', "answer to these inputs is not"),
            (b'{"inputs": {"observation": [[1e40, 1.0, 0.0]]}}', "float32 (largest 3.403e+38)"),
            (b'{"inputs": {"observation": [[3.5e38, 1, 0]]}}', "float32 (largest 3.403e+38)"),
            (b'{"inputs": {"observation": [[-Infinity, 1, 0]]}}', "holds NaN or infinite"),
        ):
            with pytest.raises(RequestError, match=re.escape(fragment)) as refused:
                predictions(graph, body)
            assert refused.value.status == 400
    largest = np.finfo(np.float32).max.item()  # still a float32: answered
    body = json.dumps({"inputs": {"observation": [[largest, 0.0, 0.0]]}}).encode()
    assert json.loads(predictions(graph, body))["predictions"][0][0] == pytest.approx(1.8446744e19)


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
