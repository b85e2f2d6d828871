"""SkillLibrary.act: one call for one observation or a batch, any mix of skills, the same
actions as the standalone skill modules that get registered and exported."""

import numpy as np
import pytest
import torch

from skillforge.core.config import PretrainConfig
from skillforge.core.envs import make_env
from skillforge.rl.diayn import DIAYN
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import SkillLibrary


@pytest.fixture(scope="module")
def library():
    torch.manual_seed(0)
    spec = LibrarySpec.from_env("Hopper-v5", make_env("Hopper-v5"), n_skills=5, hidden=16)
    agent = DIAYN(spec, PretrainConfig(env_id="Hopper-v5", n_skills=5, hidden=16))
    return SkillLibrary(spec, agent.sac.policy, agent.discriminator)


def test_single_batched_and_mixed_skills_agree_with_the_skill_modules(library):
    observations = np.random.default_rng(0).normal(size=(6, 11)).astype(np.float32)
    skills = np.array([0, 4, 2, 2, 1, 3])
    mixed = library.act(observations, skills)
    assert mixed.shape == (6, 3) and mixed.dtype == np.float32
    for row, (obs, skill) in enumerate(zip(observations, skills, strict=True)):
        module = library.skill(int(skill))(torch.from_numpy(obs)[None])[0].detach().numpy()
        np.testing.assert_allclose(mixed[row], module, atol=1e-6)
        single = library.act(obs, int(skill))
        assert single.shape == (3,)
        np.testing.assert_allclose(single, mixed[row], atol=1e-6)
    np.testing.assert_allclose(
        library.act(observations, 2), library.act(observations, np.full(6, 2)), atol=0
    )
    assert np.all(np.abs(mixed) <= 1.0)  # Hopper's action bounds


@pytest.mark.parametrize(
    ("obs_rows", "skill", "message"),
    [(None, 5, "out of range 0..4"), (None, -1, "out of range"), (3, [0, 1], "2 skills for 3")],
)
def test_bad_skills_are_refused(library, obs_rows, skill, message):
    obs = np.zeros(11) if obs_rows is None else np.zeros((obs_rows, 11))
    with pytest.raises(ValueError, match=message):
        library.act(obs, skill)
