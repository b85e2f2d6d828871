"""Training flushes subnormal floats to zero (Adam's moments of tiny gradients late in a run
would otherwise make every step many times slower on x86), and afterwards gives the thread
its own setting back: code outside training may rely on subnormals."""

import pytest
import torch
from helpers import tiny_config

from skillforge.rl import loop
from skillforge.rl.sac import SUBNORMAL, subnormals_flushed_now


class FlushSeen:
    """Records, at every report, whether subnormals are flushed."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def on_step(self, step: int, metrics: dict) -> None:
        self.seen.append(subnormals_flushed_now())


@pytest.fixture(autouse=True)
def torch_default():
    yield
    torch.set_flush_denormal(False)


@pytest.mark.parametrize("before", [False, True])
def test_pretraining_flushes_subnormals_then_restores_the_thread_s_setting(tmp_path, before):
    torch.set_flush_denormal(before)
    assert subnormals_flushed_now() == before
    seen = FlushSeen()
    loop.train(tiny_config(total_steps=200), str(tmp_path / "run.pt"), [seen])
    assert seen.seen and all(seen.seen)
    assert subnormals_flushed_now() == before


def test_flushing_leaves_normal_numbers_alone():
    torch.set_flush_denormal(True)
    assert (torch.tensor([SUBNORMAL]) * 1.0).item() == 0.0
    assert (torch.tensor([1e-30]) * 1.0).item() != 0.0
