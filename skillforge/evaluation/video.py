"""Headless videos of skills: render envs off-screen, write GIFs (one per skill, and a grid).

MuJoCo renders through EGL (`MUJOCO_GL=egl`, Debian packages libegl1 libegl-mesa0) with
shadows off (about 5x faster); Box2D and classic-control envs render with pygame. GIFs need
only pillow, and the MLflow UI shows them in the artifact view.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skillforge.core.envs import make_env, resolve_env_id
from skillforge.core.errors import first_line

# What headless MuJoCo rendering needs, by MUJOCO_GL backend.
_MUJOCO_NEEDS = {
    "egl": "the system packages libegl1 and libegl-mesa0 (apt-get install libegl1 libegl-mesa0)",
    "osmesa": "the system package libosmesa6 (apt-get install libosmesa6)",
    "glfw": "a display; without one set MUJOCO_GL=egl (system packages libegl1 libegl-mesa0)",
}

CLIPS_BYTES = 256 * 2**20
"""About the most memory the clips of one evaluation take: frames get smaller as skills add up."""
GRID_SIDE = 1024
"""The grid video of every skill is at most this many pixels wide and high, whatever N."""


@dataclass(frozen=True)
class ClipSettings:
    """Which frames to keep: every `every`-th step of episode 0, at most `max_frames`."""

    size: int
    every: int
    max_frames: int
    frame_seconds: float

    @classmethod
    def for_env(
        cls, env_id: str, size: int = 128, max_frames: int = 100, clips: int = 1
    ) -> ClipSettings:
        """Spread `max_frames` over a whole episode; play back in real time. Frames of
        `clips` clips together fit in about `CLIPS_BYTES` (smaller than `size` if needed)."""
        import gymnasium as gym

        fitting = math.isqrt(CLIPS_BYTES // (3 * max(1, clips) * max_frames))
        size = max(16, min(size, fitting))
        spec = gym.spec(resolve_env_id(env_id))
        episode_steps = spec.max_episode_steps or 1000
        every = max(1, math.ceil(episode_steps / max_frames))
        env = make_env(env_id)
        fps = float(env.metadata.get("render_fps") or 30)
        env.close()
        return cls(size, every, max_frames, every / fps)

    def wants(self, step: int, frames_so_far: int) -> bool:
        return step % self.every == 0 and frames_so_far < self.max_frames


def is_mujoco(env_id: str) -> bool:
    import gymnasium as gym

    return "mujoco" in str(gym.spec(resolve_env_id(env_id)).entry_point)


def use_headless_rendering() -> None:
    """Without a display, and unless the user chose: MuJoCo renders through EGL, and SDL
    (pygame, used by the Box2D and classic-control envs) draws offscreen, without probing
    for a desktop session (which prints "error: XDG_RUNTIME_DIR ..." lines)."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def make_render_env(env_id: str, size: int):
    """An env that renders `rgb_array` frames (MuJoCo: size x size, shadows off)."""
    use_headless_rendering()
    if is_mujoco(env_id):
        env = make_env(env_id, render_mode="rgb_array", width=size, height=size)
        env.unwrapped.model.light_castshadow[:] = 0  # the shadow map costs ~2/3 of a frame
        return env
    return make_env(env_id, render_mode="rgb_array")


def render_frame(env, size: int) -> np.ndarray:
    """The env's current frame, (height, width, 3) uint8, scaled to height `size`."""
    frame = np.asarray(env.render(), dtype=np.uint8)
    height, width = frame.shape[:2]
    if height == size:
        return frame
    from PIL import Image

    new_width = max(1, round(width * size / height))
    return np.asarray(Image.fromarray(frame).resize((new_width, size), Image.BILINEAR))


class Filmer:
    """Films N envs that run in lockstep, one clip each.

    MuJoCo: `capture` keeps a copy of the simulator state and `clips` renders them all
    through one render env (an off-screen GL context costs ~0.1-0.7 s to create, one per env
    would dominate). Other envs render in place (pygame surfaces are cheap).
    """

    def __init__(self, env_id: str, n_envs: int, settings: ClipSettings) -> None:
        self.env_id, self.settings = env_id, settings
        self.mujoco = is_mujoco(env_id)
        self.captured: list[list] = [[] for _ in range(n_envs)]

    @property
    def frame_seconds(self) -> float:
        return self.settings.frame_seconds

    def make_env(self):
        if self.mujoco:
            return make_env(self.env_id)
        return make_render_env(self.env_id, self.settings.size)

    def capture(self, row: int, env, step: int) -> None:
        """Keep env `row`'s current frame if `step` is one to film."""
        if not self.settings.wants(step, len(self.captured[row])):
            return
        if self.mujoco:
            data = env.unwrapped.data
            self.captured[row].append((data.qpos.copy(), data.qvel.copy()))
        else:
            self.captured[row].append(render_frame(env, self.settings.size))

    def clips(self) -> list[list[np.ndarray]]:
        """The frames of every env, (height, width, 3) uint8 each."""
        if not self.mujoco:
            return self.captured
        env = make_render_env(self.env_id, self.settings.size)
        try:
            env.reset(seed=0)
            clips = []
            for states in self.captured:
                clip = []
                for qpos, qvel in states:
                    env.unwrapped.set_state(qpos, qvel)
                    clip.append(render_frame(env, self.settings.size))
                clips.append(clip)
            return clips
        finally:
            env.close()


def rendering_problem(env_id: str, size: int = 64) -> str | None:
    """None if `env_id` renders on this machine, else one line saying what is missing."""
    import gymnasium as gym

    try:
        import PIL  # noqa: F401
    except ImportError as error:
        return f"writing videos needs the Python package {error.name} (pip install {error.name})"
    env = None
    try:
        env = make_render_env(env_id, size)
        env.reset(seed=0)
        frame = render_frame(env, size)
        if frame.ndim != 3 or frame.size == 0:
            return f"{env_id} rendered no image"
        return None
    except ImportError as error:
        name = error.name or "a rendering library"
        return f"rendering {env_id} needs the Python package {name} (pip install {name})"
    except gym.error.DependencyNotInstalled as error:  # e.g. pygame for Box2D, classic control
        return f"rendering {env_id} needs a missing Python package: {first_line(error, 160)}"
    except Exception as error:  # GL contexts fail with many exception types
        reason = first_line(error, 160)
        if is_mujoco(env_id):
            backend = os.environ.get("MUJOCO_GL", "")
            needs = _MUJOCO_NEEDS.get(backend, "MUJOCO_GL=egl and libegl1 libegl-mesa0")
            return f"headless MuJoCo rendering (MUJOCO_GL={backend}) needs {needs} [{reason}]"
        return f"rendering {env_id} failed: {type(error).__name__}: {reason}"
    finally:
        if env is not None:
            env.close()


def write_gif(
    frames: Iterable[np.ndarray], path: str | Path, frame_seconds: float, colors: int = 64
) -> Path:
    """An endlessly looping GIF of `frames` ((H, W, 3) uint8 each), taken one at a time (a
    generator keeps one frame in memory). Each frame gets its own palette of `colors`
    colours, undithered: a third of the size of dithered 256-colour frames of a checkered
    MuJoCo floor, and it looks the same at this size."""
    from PIL import Image

    images = (
        Image.fromarray(np.asarray(frame, dtype=np.uint8)).quantize(
            colors=colors, dither=Image.Dither.NONE
        )
        for frame in frames
    )
    first = next(images, None)
    if first is None:
        raise ValueError("no frames to write")
    path = Path(path)
    duration = max(20, round(1000 * frame_seconds))  # ms; browsers slow down faster GIFs
    first.save(path, format="GIF", save_all=True, append_images=images, duration=duration, loop=0)
    return path


def grid_frames(
    clips: list[list[np.ndarray]], max_side: int = GRID_SIDE, labels: bool = True
) -> Iterator[np.ndarray]:
    """All clips side by side, one tile per skill, labelled, at most `max_side` pixels wide
    and high; a clip that ended early holds its last frame (dimmed) until the longest one
    ends. Frames are made one at a time, as they are taken."""
    from PIL import Image, ImageDraw

    n = len(clips)
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    height, width = clips[0][0].shape[:2]
    scale = min(1.0, max_side / (columns * width), max_side / (rows * height))
    tile_w, tile_h = max(1, int(width * scale)), max(1, int(height * scale))
    for t in range(max(len(clip) for clip in clips)):
        canvas = Image.new("RGB", (columns * tile_w, rows * tile_h), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        for skill, clip in enumerate(clips):
            ended = t >= len(clip)
            tile = clip[min(t, len(clip) - 1)]
            if ended:
                tile = (tile * 0.5 + 127).astype(np.uint8)
            image = Image.fromarray(tile)
            if image.size != (tile_w, tile_h):
                image = image.resize((tile_w, tile_h), Image.BILINEAR)
            x, y = (skill % columns) * tile_w, (skill // columns) * tile_h
            canvas.paste(image, (x, y))
            if labels:
                draw.rectangle((x, y, x + 44, y + 13), fill=(255, 255, 255))
                draw.text((x + 3, y + 1), f"skill {skill}", fill=(0, 0, 0))
        yield np.asarray(canvas)


def write_grid_gif(clips: list[list[np.ndarray]], path: str | Path, frame_seconds: float) -> Path:
    """One GIF of every skill at once (`grid_frames`), made one frame at a time."""
    return write_gif(grid_frames(clips), path, frame_seconds)
