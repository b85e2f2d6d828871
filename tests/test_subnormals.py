"""Training flushes subnormal floats to zero: Adam's moments of tiny gradients late in a run
would otherwise make every step many times slower on x86."""

import torch

from skillforge.rl.sac import make_optimizer

SUBNORMAL = 1e-39  # below float32's smallest normal number, 1.2e-38


def survives(value: float) -> bool:
    return (torch.tensor([value]) * 1.0).item() != 0.0


def test_making_an_optimizer_flushes_subnormals_in_its_thread():
    torch.set_flush_denormal(False)
    assert survives(SUBNORMAL)  # torch's default: kept
    make_optimizer(torch.nn.Linear(4, 4).parameters(), 3e-4, torch.device("cpu"))
    assert not survives(SUBNORMAL)
    assert survives(1e-30)  # normal numbers are untouched
