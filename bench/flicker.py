"""Flicker: per-frame generation against temporal mode on one shot, in one run.

The shot is devtools.scenes.motion_shot (a camera moving and panning over a textured ground
under a textured sky, a box moving and turning). Each frame is captured once (depth + motion
vectors, compositor/motion_capture) and both modes use those captures, the same seed and depth,
the tiny SD 1.5 model, in one Blender with one warm backend:

  flicker = mean |frame_n - warp(frame_n-1)| (8-bit, all channels) on the pixels visible in
            both frames (the forward-backward mask of the true vectors, not dilated)
  drift   = mean |temporal_n - perframe_n| over the whole picture (stable must not mean frozen)

It prints both for per-frame and for temporal mode at several carries, the flicker ratio
(goal: temporal <= 0.3x per-frame) and the time ratio; and, for scale, the flicker of the
first frame simply held (frozen: low flicker there would need no motion). It first checks
that the tiny model responds to what it is given (other depth -> other picture, other init
picture -> other img2img picture): a model that ignored them would make the figures moot.

    .venv/bin/python bench/flicker.py [--frames 12] [--size 128x128] [--steps 8]
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--carries", default="1,0.85,0.6",
                        help="the temporal mode's carries to measure, comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep the frames (prints where)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="t2i-flicker-"))
    os.environ["BLENDER_USER_RESOURCES"] = str(scratch / "user")
    sys.path.insert(0, str(ROOT))
    import bpy

    from devtools import extension, scenes

    module = extension.install(extension.build(scratch / "dist"))
    for name in ("t2i_core.backend_process", "t2i_core.job_queue", "t2i_core.motion",
                 "t2i_core.temporal_frame", "blender_t2i.generation.temporal",
                 "blender_t2i.batch.runner"):
        importlib.import_module(f"{module}.{name}")
    addon = sys.modules[module]
    core, pure = addon.blender_t2i, addon.t2i_core
    motion_maths, png, temporal = pure.motion, pure.png, core.generation.temporal
    width, height = pure.batch_plan.parse_size(args.size)
    size = (width, height)
    frames = list(range(1, args.frames + 1))
    try:
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = bpy.context.scene
        scenes.motion_shot(scene, frames)
        scene.render.resolution_x, scene.render.resolution_y = size
        scene.render.resolution_percentage = 100
        settings = scene.t2i
        settings.model_preset = "tiny-sd15-depth"
        settings.prompt, settings.steps, settings.seed = "stone blocks on a floor", args.steps, 11
        settings.use_render_size = False
        settings.width, settings.height = size
        config = pure.backend_process.BackendConfig(python=sys.executable,
                                                    cache_dir=scratch / "models",
                                                    log_path=scratch / "backend.log")
        jobs = pure.job_queue.get_job_queue()
        base = core.generation.scene_job.job_settings(scene, preview=False)
        depth = core.generation.depth_control.DepthOptions(range_policy="LOCKED")

        captured = time.perf_counter()
        motions = {f: temporal.capture_frame(scene, f, size, scratch / "motion", False)
                   for f in frames}
        capture_s = time.perf_counter() - captured
        ranges = [pure.depth_encoding.auto_range(m.depth, m.background, depth.encoding)
                  for m in motions.values()]
        locked = pure.depth_encoding.union_range(ranges)
        depth = type(depth)(range_policy="LOCKED", locked=(locked.near, locked.far))

        def generate(folder: Path, job) -> Path:
            result = jobs.submit(job.request, config).wait()
            core.generation.scene_job.record_result(job, result)
            return Path(result["paths"][0])

        def run(folder: Path, options, seed_step: int = 0) -> tuple[list[np.ndarray], float]:
            """The shot in order; options None: every frame fresh (per-frame), its seed the
            base seed + seed_step x frame (1: --seed-mode per-frame)."""
            folder.mkdir(parents=True)
            pictures, previous, seconds = [], None, 0.0
            for index, frame in enumerate(frames):
                scene.frame_set(frame)
                started = time.perf_counter()
                job = temporal.prepare_frame(
                    scene, folder, base.but(seed=base.seed + seed_step * frame),
                    f"f{frame:04d}", index, motions[frame],
                    previous if options is not None else None,
                    options or pure.temporal_frame.TemporalOptions(), depth)
                path = generate(folder, job)
                seconds += time.perf_counter() - started
                previous = temporal.CarriedFrame(motions[frame], path)
                pictures.append(png.read_png(path).astype(np.float64))
            return pictures, seconds

        def flicker(pictures: list[np.ndarray]) -> float:
            values = []
            for i in range(1, len(frames)):
                cur, prev = motions[frames[i]], motions[frames[i - 1]]
                flow = motion_maths.flow_to_previous(cur, prev)
                warped = motion_maths.warp_previous(pictures[i - 1], flow, size)
                visible = ~motion_maths.occlusion_mask(cur, prev, dilate_px=0, size=size)
                values.append(np.abs(pictures[i] - warped)[visible].mean())
            return float(statistics.mean(values))

        # warm: load the model once, outside the timings
        scene.frame_set(1)
        generate(scratch / "warm", temporal.prepare_frame(
            scene, scratch / "motion", base, "warm", 0, motions[1], None,
            pure.temporal_frame.TemporalOptions(), depth))
        perframe, perframe_s = run(scratch / "perframe", None)
        reseeded, _seconds = run(scratch / "perframe-seeds", None, seed_step=1)
        # does the tiny model respond to its inputs at all?
        depth_response = statistics.mean(np.abs(a - b).mean()
                                         for a, b in itertools.pairwise(perframe))
        init_response = _init_response(scene, base, depth, motions[1], scratch, temporal,
                                       core, png, generate)
        results = {}
        for carry in (float(c) for c in args.carries.split(",")):
            options = pure.temporal_frame.TemporalOptions(carry=carry)
            pictures, seconds = run(scratch / f"temporal-{carry:g}", options)
            drift = [np.abs(t - p).mean() for t, p in zip(pictures, perframe, strict=True)]
            results[carry] = (flicker(pictures), statistics.mean(drift), drift[-1], seconds)
    finally:
        pure.job_queue.reset_job_queue(wait=True)
        if args.keep:
            print(f"frames kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    base_flicker = flicker(perframe)
    frozen = [perframe[0]] * len(frames)  # the first frame held: what "stable" must not be
    frozen_drift = statistics.mean(np.abs(f - p).mean() for f, p in zip(frozen, perframe,
                                                                        strict=True))
    print(f"shot: {args.frames} frames at {width}x{height}, {args.steps} steps, tiny-sd15-depth; "
          f"capture (depth + vectors, one render per frame) {capture_s / args.frames:.3f} s/frame")
    print(f"model responds: mean |frame_n - frame_n-1| per-frame {depth_response:.2f} (depth), "
          f"|img2img(A) - img2img(B)| {init_response:.2f} (init picture, strength 0.6)")
    print(f"per-frame: flicker {base_flicker:.2f}, {perframe_s / args.frames:.3f} s/frame")
    print(f"per-frame, seed + frame (--seed-mode per-frame): flicker {flicker(reseeded):.2f}; "
          f"temporal's flicker against it below in brackets")
    print(f"frozen (frame 1 held, not warped): flicker {flicker(frozen):.2f} = "
          f"{flicker(frozen) / base_flicker:.3f}x per-frame, drift mean {frozen_drift:.2f}")
    for carry, (value, drift, last, seconds) in results.items():
        print(f"temporal carry {carry:g}: flicker {value:.2f} = {value / base_flicker:.3f}x "
              f"per-frame (goal <= 0.3x) [{value / flicker(reseeded):.3f}x], drift mean "
              f"{drift:.2f} / last frame {last:.2f}, "
              f"time {seconds / perframe_s:.3f}x per-frame")
    return 0


def _init_response(scene, base, depth, motion, scratch, temporal, core, png, generate) -> float:
    """Mean |difference| of two img2img results whose init pictures differ (a gradient and
    its inverse), everything else equal: 0 would mean the tiny VAE ignores the picture."""
    folder = scratch / "init-response"
    folder.mkdir()
    height, width = motion.depth.shape
    ramp = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
    pictures = []
    for name, picture in (("a", ramp), ("b", 255 - ramp)):
        init = png.write_png(folder / f"{name}.png", np.rint(picture).astype(np.uint8))
        control = temporal.control_from_motion(scene, motion, folder, name, depth)
        job = core.generation.scene_job.prepare_job(
            scene, folder, base.but(use_render=True, render_strength=0.6), name, depth,
            control=control, init_image=init)
        pictures.append(png.read_png(generate(folder, job)).astype(np.float64))
    return float(np.abs(pictures[0] - pictures[1]).mean())


if __name__ == "__main__":
    sys.exit(main())
