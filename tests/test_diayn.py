import math
import os
import signal

import pytest
import torch
from helpers import tiny_config

from skillforge.core.errors import TrainingDiverged, TrainingInterrupted
from skillforge.rl import diayn, loop
from skillforge.rl.checkpoint import load_checkpoint
from skillforge.rl.replay import Batch
from skillforge.rl.sac import SAC
from skillforge.rl.spec import LibrarySpec

SPEC = LibrarySpec("Pendulum-v1", 3, 1, (-2.0,), (2.0,), n_skills=4, hidden=16)


def make_batch(skill: int, size: int = 8, terminated: float = 0.0) -> Batch:
    return Batch(
        obs=torch.randn(size, 3),
        skill=torch.full((size,), skill),
        action=torch.zeros(size, 1),
        reward=torch.zeros(size),
        next_obs=torch.randn(size, 3),
        terminated=torch.full((size,), terminated),
    )


def metric(metrics: torch.Tensor, name: str) -> float:
    return float(metrics[diayn.METRIC_NAMES.index(name)])


def test_intrinsic_reward_is_log_q_minus_log_p_on_a_hand_made_discriminator():
    agent = diayn.DIAYN(SPEC, tiny_config(hidden=16))
    last = agent.discriminator.net[-1]
    with torch.no_grad():  # q(z|s) ignores s: logits = fixed bias
        last.weight.zero_()
        last.bias.copy_(torch.tensor([2.0, 0.0, -1.0, 0.5]))
    log_q = torch.log_softmax(torch.tensor([2.0, 0.0, -1.0, 0.5]), dim=0)
    for skill in range(4):
        _, metrics = agent.losses(make_batch(skill))
        expected_reward = float(log_q[skill]) + math.log(4)  # log q(z|s') - log(1/N)
        assert metric(metrics, "intrinsic_reward") == pytest.approx(expected_reward, abs=1e-5)
        assert metric(metrics, "log_q_z") == pytest.approx(float(log_q[skill]), abs=1e-5)
        assert metric(metrics, "discriminator_loss") == pytest.approx(-float(log_q[skill]), 1e-5)
        assert metric(metrics, "discriminator_accuracy") == (1.0 if skill == 0 else 0.0)


def test_chance_discriminator_gives_zero_reward():
    agent = diayn.DIAYN(SPEC, tiny_config(hidden=16))
    with torch.no_grad():
        agent.discriminator.net[-1].weight.zero_()
        agent.discriminator.net[-1].bias.zero_()
    _, metrics = agent.losses(make_batch(2))
    assert metric(metrics, "log_q_z") == pytest.approx(-math.log(4), abs=1e-6)
    assert metric(metrics, "intrinsic_reward") == pytest.approx(0.0, abs=1e-6)


def test_sac_target_uses_termination_not_truncation():
    sac = SAC(state_dim=3, action_dim=1, hidden=8, action_low=[-1], action_high=[1], alpha=0.1)
    with torch.no_grad():
        for tensor in sac.critic.parameters():
            tensor.zero_()  # Q(s, a) = 0
        for tensor in sac.target_critic.parameters():
            tensor.zero_()
        sac.target_critic.biases[-1].fill_(100.0)  # Q_target(s', a') = 100
    state, action = torch.randn(16, 3), torch.zeros(16, 1)
    reward = torch.full((16,), 2.0)
    ended = sac.losses(state, action, reward, state, torch.ones(16))
    # terminated: target = r, so each critic's 0.5 * mean((0 - 2)^2) = 2, summed over two
    assert float(ended.critic.detach()) == pytest.approx(4.0)
    continuing = sac.losses(state, action, reward, state, torch.zeros(16))
    # bootstraps through 0.99 * (100 - alpha log pi)
    assert float(continuing.critic.detach()) > 1000


def test_actor_loss_gives_no_gradient_to_the_critic():
    sac = SAC(state_dim=3, action_dim=1, hidden=8, action_low=[-1], action_high=[1])
    state = torch.randn(16, 3)
    losses = sac.losses(state, torch.zeros(16, 1), torch.zeros(16), state, torch.zeros(16))
    losses.actor.backward()
    assert all(p.grad is None for p in sac.critic.parameters())
    assert all(p.grad is not None for p in sac.policy.parameters())


def weights(result: loop.TrainResult) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in result.agent.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_same_seed_same_weights(tmp_path):
    first = loop.train(tiny_config(), str(tmp_path / "a.pt"))
    second = loop.train(tiny_config(), str(tmp_path / "b.pt"))
    assert_same_weights(weights(first), weights(second))
    other = loop.train(tiny_config(seed=1), str(tmp_path / "c.pt"))
    assert not torch.equal(
        first.agent.state_dict()["sac.policy.net.0.weight"],
        other.agent.state_dict()["sac.policy.net.0.weight"],
    )


class InterruptAt:
    """Sends this process SIGINT at the first report at or after a step, as Ctrl-C would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step: int, metrics: dict) -> None:
        if step >= self.step:
            self.step = float("inf")
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(
    "changes",
    [{}, {"objective": "metra", "envs": 4, "updates_per_step": 0.25}],
    ids=["diayn", "metra-4-envs-quarter-updates"],
)
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, changes):
    config = tiny_config(total_steps=400, checkpoint_every=1000, **changes)  # only the interrupt
    uninterrupted = weights(loop.train(config, str(tmp_path / "full.pt")))

    path = str(tmp_path / "resumed.pt")
    # Pendulum episodes last 200 steps: step 250 is mid-episode, so resume must replay it
    with pytest.raises(TrainingInterrupted) as stop:
        loop.train(config, path, [InterruptAt(250)])
    step = 250 if config.envs == 1 else 252  # 4 envs step 4 at a time: the report after 250
    assert stop.value.step == step and stop.value.checkpoint_path == path
    state = load_checkpoint(path)
    assert state["step"] == step and len(state["episodes"]) == config.envs
    assert all(len(e["actions"]) == (step // config.envs) % 200 for e in state["episodes"])
    resumed = loop.train(config, path, resume_state=state)
    assert resumed.step == 400
    assert_same_weights(uninterrupted, weights(resumed))


def test_checkpoints_are_written_on_schedule(tmp_path):
    written = []

    class Recorder:
        def on_checkpoint(self, path, step):
            written.append(step)

    loop.train(tiny_config(total_steps=250), str(tmp_path / "c.pt"), [Recorder()])
    assert written == [100, 200, 250]


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "c.pt"

    class Poison:
        def on_start(self, info):
            self.agent = info["agent"]

        def on_step(self, step, metrics):
            if step == 150:
                for tensor in self.agent.parameters():
                    tensor.data.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="by step 200"):
        loop.train(tiny_config(total_steps=300), str(path), [Poison()])
    assert load_checkpoint(path)["step"] == 100


def test_a_minutes_budget_ends_training_and_fixes_its_steps(tmp_path):
    """`--minutes`: training stops once that much wall-clock time has passed; the steps done
    by then become the run's total (so the finished library reads as finished)."""
    config = tiny_config(total_steps=10**9, total_minutes=0.05, checkpoint_every=10**9)
    result = loop.train(config, str(tmp_path / "c.pt"))
    state = load_checkpoint(tmp_path / "c.pt")
    assert result.step < 10**9 and result.config.total_steps == result.step == state["step"]
    assert state["config"]["total_steps"] == result.step and state["seconds"] >= 3.0
    # one gradient step per env step after the warm-up, counted across the run
    assert state["gradient_steps"] == result.step - config.learning_starts > 0
