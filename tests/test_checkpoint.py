import os
import pickle
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

from skillforge.core.errors import CheckpointError, first_line
from skillforge.rl.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    path = save_checkpoint({"w": torch.arange(3.0), "step": 7}, tmp_path / "c.pt")
    state = load_checkpoint(path)
    assert state["step"] == 7 and torch.equal(state["w"], torch.arange(3.0))


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint({"step": 1}, tmp_path / "c.pt")

    def broken_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["c.pt"]  # no temp file left behind


WRITER = """
import sys, torch
from skillforge.rl.checkpoint import save_checkpoint
step = 0
while True:
    step += 1
    save_checkpoint({"step": step, "w": torch.full((500_000,), float(step))}, sys.argv[1])
"""


def test_kill_9_during_writes_never_leaves_a_broken_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    for attempt in range(3):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        deadline = time.time() + 30
        while not path.exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3 + 0.2 * attempt)
        process.send_signal(signal.SIGKILL)
        process.wait()
        state = load_checkpoint(path)
        assert torch.all(state["w"] == state["step"])


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"format": "skillforge-checkpoint", "x": Exploit()}, handle)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("zipped", [False, True], ids=["plain pickle", "torch zip"])
def test_a_crafted_pickle_is_refused_in_whole_words_without_torchs_warning(tmp_path, zipped):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "evil.pt"
    payload = {"format": "skillforge-checkpoint", "x": Exploit()}
    if zipped:
        torch.save(payload, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError) as refused:
            load_checkpoint(path)
    assert [str(warning.message) for warning in caught] == []
    message = str(refused.value)
    assert message.startswith(f"refusing to load {path}: it holds more than plain tensors (")
    assert message.endswith("), and loading that could run code")
    assert ("posix.system" in message) == zipped and "weights_only" not in message


def test_quoted_messages_are_cut_at_a_word_end():
    error = RuntimeError("the quick brown fox jumps over the lazy dog\nsecond line")
    assert first_line(error, 100) == "the quick brown fox jumps over the lazy dog"
    assert first_line(error, 17) == "the quick brown..."
    assert first_line(RuntimeError()) == "RuntimeError"


@pytest.mark.parametrize("content", [b"", b"garbage" * 10])
def test_empty_or_garbage_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = save_checkpoint({"w": torch.zeros(10_000)}, tmp_path / "c.pt")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a skillforge checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
