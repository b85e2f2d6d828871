"""The hurdle course: HalfCheetah's model with boxes 0.25 m high every 3 m from x = 3 m (40 of
them), the ground of the `halfcheetah-hurdle` task.

It is also an env of its own, `HalfCheetahHurdles-v5` (alias `halfcheetah-hurdles`; its
`WithPosition` variant is registered by `position_envs`), with HalfCheetah's reward: a
library can be pretrained on the ground its task is run on, without the task's reward.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np

ENV_ID = "HalfCheetahHurdles-v5"
HURDLE_SPACING, HURDLE_HEIGHT, HURDLE_COUNT = 3.0, 0.25, 40
HURDLES = HURDLE_SPACING * np.arange(1, HURDLE_COUNT + 1)
"""The hurdles' x (their centres): 3 m, 6 m, ..., 120 m."""
NO_HURDLE_AHEAD = 10.0
"""The distance observed once the torso is past the last hurdle: farther than a next hurdle
ever is within the course (3 m), so it reads "nothing within reach"."""


def distance_to_next_hurdle(x: float) -> float:
    """Metres from torso x to the first hurdle whose centre is ahead of it (`3 - x` before the
    first, whatever x < 3), or `NO_HURDLE_AHEAD` past the last one."""
    ahead = HURDLES[x < HURDLES]
    return float(ahead[0] - x) if ahead.size else NO_HURDLE_AHEAD


def hurdle_xml() -> str:
    """HalfCheetah's model (MJCF text) with hurdles added to the world."""
    import gymnasium.envs.mujoco as mujoco_envs

    source = os.path.join(os.path.dirname(mujoco_envs.__file__), "assets", "half_cheetah.xml")
    with open(source) as handle:
        xml = handle.read()
    half = HURDLE_HEIGHT / 2
    hurdles = "".join(
        f'<geom name="hurdle{i}" type="box" pos="{HURDLE_SPACING * (i + 1)} 0 {half}" '
        f'size="0.05 1 {half}" contype="1" conaffinity="1" rgba="0.9 0.3 0.3 1"/>'
        for i in range(HURDLE_COUNT)
    )
    return re.sub(r"(<worldbody>)", r"\1" + hurdles, xml, count=1)


def hurdle_model_file() -> Path:
    """The hurdle model as a file MuJoCo can load, written once per content (its name holds
    a hash) and never deleted: an env made from it can be made again from its spec."""
    xml = hurdle_xml()
    digest = hashlib.sha256(xml.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"skillforge-half-cheetah-hurdles-{digest}.xml"
    if not path.is_file():
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            f.write(xml)
        os.replace(f.name, path)  # atomic: a concurrent maker sees the whole file or none
    return path


def hurdle_course(xml_file: str | None = None, **kwargs) -> gym.Env:
    """HalfCheetah-v5 on the hurdle course; `kwargs` go to gymnasium's HalfCheetah env."""
    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

    return HalfCheetahEnv(xml_file=xml_file or str(hurdle_model_file()), **kwargs)


def register() -> None:
    """Register `HalfCheetahHurdles-v5` with gymnasium (once; `core.envs` does)."""
    if ENV_ID not in gym.registry:
        base = gym.spec("HalfCheetah-v5")
        gym.register(
            id=ENV_ID,
            entry_point=f"{__name__}:hurdle_course",
            max_episode_steps=base.max_episode_steps,
            kwargs=dict(base.kwargs),
        )
