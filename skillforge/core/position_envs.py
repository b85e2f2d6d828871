"""MuJoCo locomotion envs that keep the agent's position in the observation.

Gymnasium's MuJoCo envs leave the torso's x (and y) out of the observation by default, so
nothing that sees only the observation can tell where the agent is. Skills that travel need
it: METRA's phi must measure displacement, and a DIAYN prior on x or x-y rewards a position
the policy and critic should see too. `<Name>WithPosition-v5` is gymnasium's `<Name>-v5` with
`exclude_current_positions_from_observation=False` (x, or x-y, first in the observation);
Ant's also leaves out the 78 contact forces, as METRA's Ant does (29 numbers: qpos, qvel).
Being an env id of its own, a library made on it records the option, and evaluation, the
downstream tasks and the registered models all build the same env.
"""

from __future__ import annotations

SUFFIX = "WithPosition"
FAMILIES = ("Hopper", "HalfCheetah", "HalfCheetahHurdles", "Walker2d", "Ant", "Humanoid", "Swimmer")
OPTIONS = {"exclude_current_positions_from_observation": False}
FAMILY_OPTIONS = {"Ant": {"include_cfrc_ext_in_observation": False}}
VERSION = "v5"


def register() -> None:
    """Register every `<Name>WithPosition-v5` id with gymnasium (once; `core.envs` does,
    after `HalfCheetahHurdles-v5`)."""
    import gymnasium as gym

    for family in FAMILIES:
        env_id = f"{family}{SUFFIX}-{VERSION}"
        if env_id not in gym.registry:
            base = gym.spec(f"{family}-{VERSION}")
            gym.register(
                id=env_id,
                entry_point=base.entry_point,
                max_episode_steps=base.max_episode_steps,
                kwargs={**base.kwargs, **OPTIONS, **FAMILY_OPTIONS.get(family, {})},
            )


def with_position(env_id: str) -> str:
    """The variant of `env_id` that observes its position (itself if it has none to add)."""
    family, _, version = env_id.rpartition("-")
    if family in FAMILIES and version == VERSION:
        return f"{family}{SUFFIX}-{VERSION}"
    return env_id


def family_of(env_id: str) -> str:
    """`HalfCheetahWithPosition-v5` -> `HalfCheetah` (the env family, without the variant)."""
    return env_id.split(":")[-1].rsplit("-v", 1)[0].removesuffix(SUFFIX)


def observed_env_id(env_id: str, objective: str, discriminator_features: str) -> str:
    """The env a library trains on: with its position observed where the objective rewards
    moving (METRA) or the discriminator sees a position (DIAYN's x / xy prior)."""
    if objective == "metra" or discriminator_features in ("x", "xy"):
        return with_position(env_id)
    return env_id
