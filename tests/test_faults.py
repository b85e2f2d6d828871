"""Faults provoked for real: kill -9 (a reduced soak), divergence, disk full and read-only
checkpoint folders, hostile checkpoint files, a store that lies about where a checkpoint is.
Each test checks that nothing is lost: the last complete checkpoint is kept, the run says what
happened, and the library can be continued to exactly the uninterrupted result."""

import errno
import importlib.util
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import assert_one_line_error, tiny_config
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import locations
from skillforge.app import pretrain as pipeline
from skillforge.core.config import NO_EVALUATION
from skillforge.core.errors import (
    CheckpointError,
    ConfigError,
    TrainingDiverged,
    TrainingInterrupted,
)
from skillforge.rl import checkpoint as checkpoint_module
from skillforge.rl import diayn, loop
from skillforge.rl.checkpoint import CheckpointWriteError, load_checkpoint
from skillforge.skills.library import SkillLibrary
from skillforge.store import delivery, tracking

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module, overriding conftest's (creating a store's schema
    costs ~5 s); every test uses its own library names and checkpoint folder."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def uninterrupted_weights(config, folder: Path) -> dict:
    return loop.train(config, str(folder / "reference.pt")).agent.state_dict()


# -- kill -9 ---------------------------------------------------------------------------------


def load_soak():
    spec = importlib.util.spec_from_file_location("soak_kill", ROOT / "benchmarks/soak_kill.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_kill_9_soak_reduced(tmp_path):
    """Three SIGKILLs: inside a checkpoint write, while training, while registering. The
    finished library equals an uninterrupted run's, every metric and skill there once.
    The full soak (20+ kills) is `benchmarks/soak_kill.py`."""
    soak = load_soak()
    report = soak.soak(3, tmp_path, seed=0, log=lambda text: None)
    assert report.problems == []
    assert report.kills == 3 and report.libraries >= 1
    assert report.kills_by_phase["checkpoint write"] >= 1, report.kills_by_phase
    assert report.kills_by_phase["registration"] >= 1, report.kills_by_phase
    assert report.skills_checked == 4 * report.libraries
    assert report.metric_reports_checked > 0


def test_killed_before_the_first_checkpoint_resumes_from_step_zero(store, tmp_path):
    config = tiny_config(name="early", log_every=50, checkpoint_every=100, total_steps=250)

    class Die:  # stands in for kill -9: nothing below the callback gets to clean up
        def on_step(self, step, metrics):
            if step == 50:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.pretrain(
            config,
            store,
            callbacks=[Die()],
            checkpoint_dir=tmp_path / "ck",
            evaluation=NO_EVALUATION,
        )
    assert not (tmp_path / "ck/early/checkpoint.pt").exists()
    result = pipeline.resume("early", store, evaluation=NO_EVALUATION)
    assert result.library.name == "early"
    expected = uninterrupted_weights(config, tmp_path)
    assert same_weights(load_checkpoint(result.checkpoint_path)["agent"], expected)


def test_finished_training_with_unfinished_registration_is_completed_by_resume(store, tmp_path):
    result = pipeline.pretrain(
        tiny_config(name="half"), store, checkpoint_dir=tmp_path, evaluation=NO_EVALUATION
    )
    client = MlflowClient(store, registry_uri=store)
    # as if killed during registration: two skills registered, two not, status not finished
    client.delete_registered_model("half.skill-02")
    client.delete_registered_model("half.skill-03")
    client.set_tag(result.run_id, tracking.TAG_STATUS, "running")
    completed = pipeline.resume("half", store, evaluation=NO_EVALUATION)
    assert completed.models[:2] == result.models[:2]  # not registered a second time
    for skill in range(4):
        versions = client.search_model_versions(f"name = 'half.skill-{skill:02d}'")
        assert len(versions) == 1 and versions[0].tags["run_id"] == result.run_id
        assert versions[0].tags["step"] == "300"
    assert client.get_run(result.run_id).data.tags[tracking.TAG_STATUS] == "finished"
    assert completed.library_model == result.library_model == "models:/half/1"
    client.delete_registered_model("half")  # killed before the library model: registered now
    again = pipeline.register("half", store, evaluation=NO_EVALUATION)  # idempotent
    assert again.models == completed.models and again.library_model == "models:/half/1"
    versions = client.search_model_versions("name = 'half'")
    assert [(v.tags["run_id"], v.tags["step"]) for v in versions] == [(result.run_id, "300")]
    assert pipeline.register("half", store, evaluation=NO_EVALUATION).library_model == (
        "models:/half/1"
    )


def test_sigterm_during_registration_says_how_to_finish_and_resume_finishes(
    store, tmp_path, monkeypatch
):
    """A real SIGTERM, sent by the process to itself after the first skill is registered."""
    from skillforge.app import completion

    register_skills = completion.registry.register_skills

    def first_skill_then_sigterm(client, library, *args, **kwargs):
        def after_each(skill, *rest):
            if skill == 0:
                os.kill(os.getpid(), signal.SIGTERM)

        return register_skills(client, library, *args, **kwargs, on_skill=after_each)

    monkeypatch.setattr(completion.registry, "register_skills", first_skill_then_sigterm)
    config, handler = tiny_config(name="termed"), signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as stopped:
        pipeline.pretrain(config, store, checkpoint_dir=tmp_path, evaluation=NO_EVALUATION)
    assert stopped.value.step == config.total_steps and stopped.value.run_id
    assert signal.getsignal(signal.SIGTERM) is handler  # put back as it was
    client = MlflowClient(store, registry_uri=store)
    run = client.get_run(stopped.value.run_id)
    assert run.data.tags[tracking.TAG_STATUS].startswith("interrupted after training")
    assert len(client.search_model_versions("name = 'termed.skill-00'")) == 1
    assert not client.search_model_versions("name = 'termed.skill-03'")

    monkeypatch.undo()
    completed = pipeline.resume("termed", store, evaluation=NO_EVALUATION)
    for skill in range(4):  # the first one was not registered a second time
        assert len(client.search_model_versions(f"name = 'termed.skill-{skill:02d}'")) == 1
    assert client.get_run(completed.run_id).data.tags[tracking.TAG_STATUS] == "finished"


# -- divergence ------------------------------------------------------------------------------


class Poison:
    """Makes the networks blow up after the report of step 150 (checkpoints: 100, 200...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def on_start(self, info):
        self.agent = info["agent"]

    def on_step(self, step, metrics):
        if step != 150:
            return
        with torch.no_grad():
            if self.kind == "nan-weights":
                for tensor in self.agent.parameters():
                    tensor.fill_(float("nan"))
            else:  # a critic that answers 1e30: its squared error overflows to inf
                for tensor in self.agent.sac.critic.parameters():
                    tensor.fill_(1e30)


@pytest.mark.parametrize("kind", ["nan-weights", "inf-loss"])
def test_divergence_names_step_and_loss_keeps_the_checkpoint_and_fails_the_run(
    store, tmp_path, kind
):
    config = tiny_config(name=f"div-{kind}", log_every=50)
    with pytest.raises(TrainingDiverged) as error:
        pipeline.pretrain(config, store, callbacks=[Poison(kind)], checkpoint_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert "by step 200" in message and ("became nan" in message or "became inf" in message)
    assert any(loss in message for loss in diayn.METRIC_NAMES), message
    assert "last good checkpoint (step 100)" in message
    state = load_checkpoint(tmp_path / f"div-{kind}" / "checkpoint.pt")
    assert state["step"] == 100
    assert all(torch.isfinite(t).all() for t in state["agent"].values() if t.is_floating_point())
    run_id = message.rsplit("MLflow run ", 1)[1].split()[0]
    run = MlflowClient(store, registry_uri=store).get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[tracking.TAG_STATUS].startswith("diverged: ")
    assert "by step 200" in run.data.tags[tracking.TAG_STATUS]


# -- disk full, read-only ------------------------------------------------------------------


def test_checkpoint_write_failure_keeps_the_previous_one_and_resume_finishes(
    store, tmp_path, monkeypatch
):
    config = tiny_config(name="full", total_steps=300)
    real_save = torch.save
    calls = []

    def save_until_the_disk_is_full(obj, handle, *args, **kwargs):
        calls.append(1)
        if len(calls) >= 2:
            handle.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", save_until_the_disk_is_full)
    with pytest.raises(CheckpointWriteError) as error:
        pipeline.pretrain(config, store, checkpoint_dir=tmp_path, evaluation=NO_EVALUATION)
    message = str(error.value)
    assert "No space left on device" in message and "previous checkpoint is intact" in message
    assert "skillforge pretrain --resume full" in message and "\n" not in message
    assert sorted(os.listdir(tmp_path / "full")) == ["checkpoint.pt", "metrics.jsonl", "store"]
    assert load_checkpoint(tmp_path / "full" / "checkpoint.pt")["step"] == 100
    run = tracking.find_library("full", store)
    assert run.status.startswith("failed: cannot write checkpoint")
    assert MlflowClient(store, registry_uri=store).get_run(run.run_id).info.status == "FAILED"

    monkeypatch.undo()  # space freed
    result = pipeline.resume("full", store, evaluation=NO_EVALUATION)
    assert same_weights(
        load_checkpoint(result.checkpoint_path)["agent"], uninterrupted_weights(config, tmp_path)
    )


def can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || mount -t tmpfs tmpfs /tmp"],
        capture_output=True,
    )  # fmt: skip
    return probe.returncode == 0


FAULT_SCRIPT = """
set -u
mount -t tmpfs -o size={size} tmpfs "$CK"
"$PYTHON" -m cli.main pretrain pendulum --name "$NAME" --steps 3000 {tiny} \\
    --tracking-uri "$STORE" --checkpoint-dir "$CK" >"$OUT/stdout" 2>"$OUT/stderr" &
pid=$!
if [ "{fault}" = read-only ]; then
    while [ ! -f "$CK/$NAME/checkpoint.pt" ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
    until mount -o remount,ro "$CK" 2>/dev/null; do sleep 0.005; done
fi
wait $pid
echo $? >"$OUT/exit"
cp -r "$CK/$NAME" "$OUT/kept" 2>/dev/null || true
"""


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs mount namespaces (unshare -m)")
@pytest.mark.parametrize("fault", ["disk-full", "read-only"])
def test_real_disk_full_or_read_only_checkpoint_folder(store, workdir, fault):
    """A real tmpfs: 200 KiB holds one checkpoint (~120 KiB) but not the temp file of the
    next one (disk full), or it is remounted read-only after the first checkpoint."""
    folder = workdir / "ck"
    out = workdir / "out"
    folder.mkdir()
    out.mkdir()
    tiny = "--skills 4 --hidden 32 --batch-size 32 --buffer-size 1000 --learning-starts 100 "
    tiny += "--checkpoint-every 100 --threads 1"
    size = "200k" if fault == "disk-full" else "10m"
    script = FAULT_SCRIPT.format(size=size, tiny=tiny, fault=fault)
    name = f"real-{fault}"
    env = {**os.environ, "CK": str(folder), "OUT": str(out), "STORE": store, "NAME": name}
    env |= {"PYTHON": sys.executable, "MUJOCO_GL": "egl"}
    subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        env=env,
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    stderr = (out / "stderr").read_text()
    assert (out / "exit").read_text().strip() == "1", stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    reason = "No space left on device" if fault == "disk-full" else "Read-only file system"
    assert "cannot write checkpoint" in lines[0] and reason in lines[0], lines[0]
    assert "previous checkpoint is intact" in lines[0]
    assert f"skillforge pretrain --resume {name}" in lines[0]
    kept = load_checkpoint(out / "kept" / "checkpoint.pt")  # the last good one, complete
    assert kept["step"] % 100 == 0 and kept["step"] >= 100
    assert not list((out / "kept").glob(".checkpoint.pt.*.tmp"))
    info = tracking.find_library(name, store)
    assert info.status.startswith("failed: cannot write checkpoint")
    assert MlflowClient(store, registry_uri=store).get_run(info.run_id).info.status == "FAILED"

    if fault == "read-only":
        return  # continuing after the fault: shown once, for the full disk
    # room again: put the kept checkpoint back where the run expects it, and continue
    (folder / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "kept" / "checkpoint.pt", folder / name / "checkpoint.pt")
    result = runner.invoke(
        app, ["pretrain", "--resume", name, "--steps", str(kept["step"] + 100),
              "--tracking-uri", store, "--eval-episodes", "1", "--no-video"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_checkpoint(folder / name / "checkpoint.pt")["step"] == kept["step"] + 100


# -- files from elsewhere ------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    result = pipeline.pretrain(
        tiny_config(name="lib"),
        store,
        checkpoint_dir=folder / "ck",
        evaluation=NO_EVALUATION,
    )
    return SimpleNamespace(store=store, folder=folder, result=result)


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hostile_files(folder: Path, marker: Path, genuine: bytes) -> dict[str, Path]:
    """A real malicious pickle (plain and inside a torch zip), and broken or foreign files."""
    files = {}
    with open(folder / "evil.pkl", "wb") as handle:
        pickle.dump({"format": "skillforge-checkpoint", "x": Exploit(marker)}, handle)
    files["malicious pickle"] = folder / "evil.pkl"
    torch.save({"format": "skillforge-checkpoint", "x": Exploit(marker)}, folder / "evil.pt")
    files["malicious torch zip"] = folder / "evil.pt"
    for name, content in {
        "empty": b"",
        "truncated": genuine[: len(genuine) // 2],
        "garbage": os.urandom(4096),
        "text": b"hello\n" * 100,
    }.items():
        (folder / name).write_bytes(content)
        files[name] = folder / name
    torch.save({"state_dict": {"w": torch.zeros(3)}}, folder / "foreign.pt")
    files["foreign torch file"] = folder / "foreign.pt"
    torch.save(
        {"format": "skillforge-checkpoint", "format_version": 1, "step": "many", "config": 3},
        folder / "tampered.pt",
    )
    files["tampered fields"] = folder / "tampered.pt"
    return files


def test_hostile_checkpoints_are_refused_in_one_line_and_never_run_code(finished, tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = Path(finished.result.checkpoint_path)
    genuine = checkpoint.read_bytes()
    tried = 0
    try:
        for kind, path in hostile_files(tmp_path, marker, genuine).items():
            shutil.copy(path, checkpoint)
            for args in (
                ["pretrain", "--resume", "lib", "--steps", "400"],
                ["library", "register", "lib"],
            ):
                result = runner.invoke(app, [*args, "--tracking-uri", finished.store])
                line = assert_one_line_error(result)
                assert str(checkpoint) in line, (kind, line)
                tried += 1
            with pytest.raises(CheckpointError):
                SkillLibrary.from_checkpoint(checkpoint)
            assert not marker.exists(), kind
    finally:
        checkpoint.write_bytes(genuine)
    assert tried == 16
    assert load_checkpoint(checkpoint)["step"] == 300  # the genuine one still loads


def test_a_store_cannot_send_a_checkpoint_outside_its_library_folder(finished, tmp_path):
    client = MlflowClient(finished.store, registry_uri=finished.store)
    run_id = finished.result.run_id
    original = client.get_run(run_id).data.tags[tracking.TAG_CHECKPOINT]
    try:
        for elsewhere in ("/etc/passwd", str(tmp_path / "other" / "checkpoint.pt"), "rel.pt"):
            client.set_tag(run_id, tracking.TAG_CHECKPOINT, elsewhere)
            result = runner.invoke(
                app, ["pretrain", "--resume", "lib", "--steps", "400", "--tracking-uri",
                      finished.store],
            )  # fmt: skip
            assert_one_line_error(result, "refusing to read or write there")
    finally:
        client.set_tag(run_id, tracking.TAG_CHECKPOINT, original)


def test_library_names_cannot_leave_the_checkpoint_folder(tmp_path):
    root = locations.checkpoint_root(tmp_path / "ck")
    root.mkdir()  # checked, not made: the first checkpoint makes it
    (tmp_path / "outside").mkdir()
    (root / "linked").symlink_to(tmp_path / "outside")  # a folder that points elsewhere
    for name in ("../../x", "..", "a/b", "/abs", "linked", "", "x" * 65, "a\x00b"):
        with pytest.raises(ConfigError):
            locations.checkpoint_path_for(root, name)
    assert locations.checkpoint_path_for(root, "ok-name").parent.parent == root


# -- the metric journal ----------------------------------------------------------------------


def test_metric_journal_drops_a_torn_line_and_ignores_another_runs_journal(tmp_path):
    path = tmp_path / "metrics.jsonl"
    journal = delivery.MetricJournal(path, "run-a")
    assert journal.load() == []
    for step in (50, 100):
        journal.append(delivery.Report(step, 1_000 + step, {"log_q_z": -1.0 / step}))
    with open(path, "a") as handle:
        handle.write('{"step": 150, "time": 11')  # a kill in the middle of a write
    reports = delivery.MetricJournal(path, "run-a").load()
    assert [r.step for r in reports] == [50, 100]
    assert path.read_text().endswith("\n")  # the torn line is gone, appends stay clean
    assert delivery.MetricJournal(path, "run-b").load() == []
    header = json.loads(path.read_text().splitlines()[0])
    assert header["run_id"] == "run-b"


def test_buffered_tracker_resends_only_what_the_store_lacks(store, tmp_path):
    client = tracking.connect(store)
    experiment = tracking.ensure_experiment(client, "journal")
    run_id = client.create_run(experiment).info.run_id
    journal = delivery.MetricJournal(tmp_path / "metrics.jsonl", run_id)
    journal.load()
    for step in (100, 200, 300):
        journal.append(delivery.Report(step, 5_000 + step, {"loss": float(step)}))
    tracker = delivery.BufferedTracker(client, run_id, journal, sent_step=100)
    tracker.on_step(200, {"loss": 999.0})  # the resumed run reaches a journaled step again
    tracker.on_step(400, {"loss": 400.0})
    tracker.on_step(400, {"q": 1.0})  # this run's own reports at one step: all are sent
    tracker.on_step(390, {"return": 5.0})
    assert tracker.close(timeout=30)
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
    assert history == [(200, 200.0), (300, 300.0), (400, 400.0)]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "q")] == [(400, 1.0)]
    assert [m.step for m in client.get_metric_history(run_id, "return")] == [390]
    assert client.get_run(run_id).data.tags[tracking.TAG_STEP] == "400"
    # sending the journal again (a crash after sending, before the step tag) adds nothing
    again = delivery.BufferedTracker(client, run_id, journal, sent_step=100)
    assert again.close(timeout=30)
    assert len(client.get_metric_history(run_id, "loss")) == 3


def test_buffered_tracker_keeps_reports_and_warns_once_while_the_store_is_down(tmp_path, caplog):
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{probe.getsockname()[1]}"
    journal = delivery.MetricJournal(tmp_path / "metrics.jsonl", "run-down")
    journal.load()
    tracker = delivery.BufferedTracker(MlflowClient(uri), "run-down", journal, retry_seconds=0.05)
    for step in (100, 200, 300):
        tracker.on_step(step, {"loss": float(step)})
    assert not tracker.flush(timeout=0.5)
    assert tracker.unsent == 3 and tracker.store_down_for is not None
    assert not tracker.close(timeout=0.1)
    warnings = [r.getMessage() for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(warnings) == 1 and "training goes on" in warnings[0], warnings
    assert str(journal.path) in warnings[0]
    kept = delivery.MetricJournal(journal.path, "run-down").load()
    assert [(r.step, r.metrics["loss"]) for r in kept] == [(100, 100.0), (200, 200.0), (300, 300.0)]


# -- exports: disk full, read-only, broken files -------------------------------------------

EXPORT_SCRIPT = r"""
import hashlib, json, os, subprocess, sys
from pathlib import Path
from typer.testing import CliRunner
from cli.main import app

checkpoint, folder, report = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
target = folder / "lib"
command = ["export", "--from-checkpoint", checkpoint, "--out", str(target), "--force"]

def files():
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(target.iterdir())}

def attempt():
    result = CliRunner().invoke(app, command)
    return {"exit": result.exit_code, "stderr": result.stderr, "output": result.output,
            "exception": repr(result.exception)}

results = {"first": attempt()}
before = files()
with open(folder / "filler", "wb") as filler:  # the disk fills up
    try:
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()
    except OSError:
        pass
results["full"] = attempt()
results["intact after full"] = files() == before
(folder / "filler").unlink()
subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
results["read-only"] = attempt()
results["intact after read-only"] = files() == before
results["leftovers"] = sorted(p.name for p in folder.iterdir() if p.name != "lib")
report.write_text(json.dumps(results))
"""


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs mount namespaces (unshare -m)")
def test_export_on_a_full_or_read_only_disk_keeps_the_previous_export(finished, tmp_path):
    folder, report = tmp_path / "exports", tmp_path / "report.json"
    folder.mkdir()
    script = f'mount -t tmpfs -o size=2m tmpfs "{folder}" && "$PYTHON" -c "$SCRIPT" "$@"'
    env = {**os.environ, "PYTHON": sys.executable, "SCRIPT": EXPORT_SCRIPT}
    subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
         finished.result.checkpoint_path, str(folder), str(report)],
        env=env, cwd=ROOT, timeout=600, check=True,
    )  # fmt: skip
    results = json.loads(report.read_text())
    assert results["first"]["exit"] == 0, results["first"]
    for fault, reason in (("full", "No space left"), ("read-only", "Read-only file system")):
        outcome = results[fault]
        lines = outcome["stderr"].strip().splitlines()
        assert outcome["exit"] != 0 and "Traceback" not in outcome["output"], outcome
        assert len(lines) == 1 and lines[0].startswith("error: "), outcome
        assert reason in lines[0], lines[0]
        assert results[f"intact after {fault}"], f"the previous export changed ({fault})"
    assert results["leftovers"] == [], results["leftovers"]  # no staging folder left behind


def broken_onnx_files(folder: Path, genuine: bytes) -> dict[str, bytes]:
    import onnx
    from onnx import TensorProto, helper

    identity = helper.make_model(
        helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "foreign",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
    )
    onnx.save(identity, folder / "foreign.onnx")
    return {
        "empty": b"",
        "truncated": genuine[: len(genuine) // 2],
        "garbage": os.urandom(2048),
        "foreign model": (folder / "foreign.onnx").read_bytes(),
    }


@pytest.fixture(scope="module")
def exported(finished, tmp_path_factory):
    """`lib` exported to <folder>/exports/lib (the default place, relative to the cwd)."""
    from skillforge.app.export import export_saved_library

    folder = tmp_path_factory.mktemp("exported")
    out = folder / "exports" / "lib"
    export = export_saved_library("lib", tracking_uri=finished.store, out_dir=out)
    return SimpleNamespace(folder=folder, out=export.out_dir)


def test_broken_onnx_files_are_one_line_errors(finished, exported, tmp_path, monkeypatch):
    monkeypatch.chdir(exported.folder)  # exports/<library>/ is where the skills are looked up
    onnx_file = exported.out / "library.onnx"
    genuine = onnx_file.read_bytes()
    use_onnx = ["hierarchical", "--library", "lib", "--skills-from", "onnx", "--steps", "20"]
    use_onnx += ["--tracking-uri", finished.store]
    try:
        for kind, content in broken_onnx_files(tmp_path, genuine).items():
            onnx_file.write_bytes(content)
            line = assert_one_line_error(runner.invoke(app, use_onnx))
            assert "library.onnx" in line, (kind, line)
    finally:
        onnx_file.write_bytes(genuine)


def test_broken_export_manifests_are_one_line_refusals(finished, exported, monkeypatch):
    monkeypatch.chdir(exported.folder)
    onnx_file, manifest = exported.out / "library.onnx", exported.out / "manifest.json"
    genuine_onnx, genuine_manifest = onnx_file.read_bytes(), manifest.read_bytes()
    replace = ["export", "lib", "--force", "--tracking-uri", finished.store]
    try:
        for kind, content in {
            "empty": b"",
            "truncated": genuine_manifest[: len(genuine_manifest) // 2],
            "garbage": os.urandom(512),
            "foreign": b'{"format": "something-else"}',
            "not an object": b"[1, 2, 3]",
        }.items():
            manifest.write_bytes(content)
            line = assert_one_line_error(runner.invoke(app, replace))
            assert "not a skillforge export" in line, (kind, line)
            assert onnx_file.read_bytes() == genuine_onnx  # refused: nothing replaced
    finally:
        manifest.write_bytes(genuine_manifest)


def test_a_checkpoint_cannot_send_an_export_outside_the_exports_folder(
    finished, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    state = torch.load(finished.result.checkpoint_path, weights_only=True)
    for name in ("../../escaped", "/tmp/escaped", "a/../../escaped", ".."):
        state["config"]["name"] = name
        hostile = tmp_path / "named.pt"
        torch.save(state, hostile)
        result = runner.invoke(app, ["export", "--from-checkpoint", str(hostile)])
        assert_one_line_error(result)
        assert not (tmp_path.parent / "escaped").exists() and not Path("/tmp/escaped").exists()
        assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())
