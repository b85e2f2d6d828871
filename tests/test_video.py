"""Pictures and videos are written, non-empty, of the right shape; rendering refusals are clear."""

import ctypes.util
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from skillforge.core.config import MAX_SKILLS
from skillforge.core.envs import make_env
from skillforge.evaluation import video
from skillforge.evaluation.files import write_files
from skillforge.evaluation.report import evaluate
from skillforge.rl.nets import Discriminator, TanhGaussianPolicy
from skillforge.rl.spec import LibrarySpec
from skillforge.skills.library import SkillLibrary


def random_library(env_id: str, n_skills: int, seed: int = 0) -> SkillLibrary:
    """Untrained skills (random weights): enough to film and plot."""
    import torch

    torch.manual_seed(seed)
    env = make_env(env_id)
    spec = LibrarySpec.from_env(env_id, env, n_skills, hidden=16)
    env.close()
    policy = TanhGaussianPolicy(
        spec.obs_dim + n_skills, spec.action_dim, 16, spec.action_low, spec.action_high
    )
    return SkillLibrary(spec, policy, Discriminator(spec.obs_dim, n_skills, 16), name="rand")


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as image:
        frames = []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
        return frames


def test_pendulum_plots_and_videos_are_written(tmp_path):
    library = random_library("Pendulum-v1", 3)
    report = evaluate(library, episodes=2, video=True, max_frames=8)
    history = {"log_q_z": [(100, -1.0), (200, -0.5)], "eval/log_q_z": [(200, -0.7)]}
    files = write_files(report, tmp_path, history)
    names = sorted(str(path.relative_to(tmp_path)) for path in files)
    assert names == [
        "plots/confusion_matrix.png",
        "plots/learning_curve.png",
        "plots/skill_returns.png",
        "plots/trajectories.png",
        "videos/all_skills.gif",
        "videos/skill_00.gif",
        "videos/skill_01.gif",
        "videos/skill_02.gif",
    ]
    for path in files:
        assert path.stat().st_size > 1000, path
    with Image.open(tmp_path / "plots" / "confusion_matrix.png") as image:
        assert image.size[0] > 300 and image.getextrema() != ((255, 255),) * 3
    # Pendulum: 200 steps, 8 frames -> every 25th step, 25 * 0.05 s per frame (real time)
    clip = gif_frames(tmp_path / "videos" / "skill_01.gif")
    assert len(clip) == 8 and clip[0].shape == (128, 128, 3)
    assert report.frame_seconds == pytest.approx(25 / 30)  # Pendulum renders at 30 fps
    assert np.std(clip[0]) > 10  # a picture, not a blank frame
    grid = gif_frames(tmp_path / "videos" / "all_skills.gif")
    assert grid[0].shape == (256, 256, 3)  # 2 x 2 tiles for 3 skills
    assert len(grid) >= 2  # Pillow merges identical frames; the pendulum moves


def test_the_videos_of_many_skills_are_bounded_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(20)]
    clips = [frames] * MAX_SKILLS  # the same arrays: the clips themselves cost nothing here
    tracemalloc.start()
    try:
        video.write_grid_gif(clips, tmp_path / "grid.gif", 0.05)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    grid = gif_frames(tmp_path / "grid.gif")
    assert len(grid) == 20 and grid[0].shape == (video.GRID_SIDE, video.GRID_SIDE, 3)
    assert peak < 24 * 2**20  # a frame (3 MB) at a time, not all twenty
    tall = next(video.grid_frames([[np.zeros((4000, 100, 3), dtype=np.uint8)]] * 2))
    assert max(tall.shape[:2]) <= video.GRID_SIDE  # high as well as wide
    # every skill's clip together: frames shrink as skills add up
    for n_skills, size in ((3, 128), (MAX_SKILLS, 59)):
        settings = video.ClipSettings.for_env("Pendulum-v1", 128, 100, clips=n_skills)
        assert settings.size == size
        assert 3 * size**2 * settings.max_frames * n_skills <= video.CLIPS_BYTES


def test_hopper_renders_headless_and_replayed_states_look_like_live_frames(tmp_path):
    env_id = "Hopper-v5"
    assert video.rendering_problem(env_id) is None  # EGL on this machine
    settings = video.ClipSettings(size=64, every=5, max_frames=4, frame_seconds=0.04)
    filmer = video.Filmer(env_id, 1, settings)
    live = video.make_render_env(env_id, 64)
    replay_source = filmer.make_env()
    live_frames = []
    rng = np.random.default_rng(0)
    for env in (live, replay_source):
        env.reset(seed=3)
    for step in range(16):
        if step % 5 == 0:
            live_frames.append(video.render_frame(live, 64))
            filmer.capture(0, replay_source, step)
        action = rng.uniform(-1, 1, 3)
        live.step(action)
        replay_source.step(action)
    replayed = filmer.clips()[0]
    assert len(replayed) == len(live_frames) == 4
    for shown, expected in zip(replayed, live_frames, strict=True):
        assert shown.shape == (64, 64, 3)
        assert np.abs(shown.astype(int) - expected.astype(int)).mean() < 1.0
    assert np.std(replayed[-1]) > 10
    live.close()
    replay_source.close()


def test_without_pygame_evaluation_goes_on_without_video(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # `import pygame` fails
    report = evaluate(random_library("Pendulum-v1", 2), episodes=1, video=True)
    assert report.frames == []
    assert len(report.notes) == 1 and "pygame" in report.notes[0]
    assert report.notes[0].startswith("no video: rendering Pendulum-v1 needs")
    assert "log_q_z" in report.metrics()


@pytest.mark.skipif(ctypes.util.find_library("OSMesa") is not None, reason="OSMesa installed")
def test_a_missing_gl_library_names_the_system_package():
    code = "from skillforge.evaluation import video; print(video.rendering_problem('Hopper-v5'))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"MUJOCO_GL": "osmesa", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    message = done.stdout.strip().splitlines()[-1]
    assert "libosmesa6" in message and "MUJOCO_GL=osmesa" in message


def test_headless_rendering_is_chosen_only_without_a_display(monkeypatch):
    for name in ("MUJOCO_GL", "SDL_VIDEODRIVER", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    video.use_headless_rendering()
    assert "MUJOCO_GL" not in os.environ and "SDL_VIDEODRIVER" not in os.environ
    monkeypatch.delenv("DISPLAY")
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")  # the user's choice stays
    video.use_headless_rendering()
    assert os.environ["MUJOCO_GL"] == "egl" and os.environ["SDL_VIDEODRIVER"] == "offscreen"


def test_classic_control_rendering_prints_no_sdl_errors(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "XDG_RUNTIME_DIR")}
    env.pop("SDL_VIDEODRIVER", None)
    script = (
        "from skillforge.evaluation.video import make_render_env\n"
        "env = make_render_env('Pendulum-v1', 64)\n"
        "env.reset(seed=0)\n"
        "print(env.render().shape)\n"
        "env.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(500, 500, 3)"
    assert "error" not in done.stderr.lower(), done.stderr
