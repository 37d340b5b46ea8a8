"""Motion capture cost (depth + vectors per frame) as a ratio to a plain render of the same
shot, measured in one run (absolute seconds vary too much between machines to mean anything).

    .venv/bin/python bench/motion_capture.py [--sizes 128x96 512x512] [--repeats 3] [--eevee]

The shot is devtools.scenes.motion_shot (a moving camera, a moving cube, a textured ground
and world). Figures are medians of `--repeats` captures after one warm-up. The plain render is
Cycles at 16 samples with the denoiser (capped so a CPU-only machine finishes); with `--eevee`,
EEVEE's capture against a plain EEVEE render at its default samples too (minutes per render
through software GL: 110 s at 128x96 here). Also printed: what skipping the textured world's
importance map saves a one-sample render (the capture skips it; the baseline builds it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from devtools import source_package  # noqa: E402

source_package.register()

import bpy  # noqa: E402
from t2i_src.compositor import compat  # noqa: E402
from t2i_src.compositor.capture import capture_depth  # noqa: E402
from t2i_src.compositor.motion_capture import capture_motion  # noqa: E402

from devtools import scenes  # noqa: E402

PLAIN_CYCLES_SAMPLES = 16


def _median_seconds(run, repeats: int) -> float:
    run()  # warm-up (EEVEE compiles shaders on its first render)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _plain_render(scene, engine: str, width: int, height: int, samples: int | None = None,
                  denoise: bool = True):
    render = scene.render
    saved = (render.engine, render.resolution_x, render.resolution_y, scene.cycles.samples,
             scene.cycles.use_denoising)
    render.engine, render.resolution_x, render.resolution_y = engine, width, height
    if samples is not None:
        scene.cycles.samples, scene.cycles.use_denoising = samples, denoise
    try:
        bpy.ops.render.render(write_still=False)
    finally:
        (render.engine, render.resolution_x, render.resolution_y, scene.cycles.samples,
         scene.cycles.use_denoising) = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["128x96", "512x512"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eevee", action="store_true", help="EEVEE too (slow without a GPU)")
    args = parser.parse_args(argv)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scenes.motion_shot(scene)
    scene.frame_set(3)
    print(f"Blender {bpy.app.version_string}; motion shot, frame 3; medians of {args.repeats}")
    print("| size | what | seconds | ratio to the plain render of its engine |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="t2i-motion-bench-") as folder:
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))

            def timed(run):
                return _median_seconds(run, args.repeats)

            plain_cycles = timed(lambda w=width, h=height: _plain_render(
                scene, "CYCLES", w, h, PLAIN_CYCLES_SAMPLES))
            rows = [
                (f"plain Cycles render ({PLAIN_CYCLES_SAMPLES} samples, denoised)",
                 plain_cycles, plain_cycles),
                ("depth only, capture_depth AUTO",
                 timed(lambda w=width, h=height: capture_depth(scene, w, h)), plain_cycles),
                ("depth + vectors, Cycles pass-only",
                 timed(lambda w=width, h=height: capture_motion(scene, 3, w, h, Path(folder),
                                                                colour=False)), plain_cycles),
            ]
            if args.eevee:
                plain_eevee = timed(lambda w=width, h=height: _plain_render(
                    scene, compat.EEVEE_ENGINE, w, h))
                rows.append(("plain EEVEE render", plain_eevee, plain_eevee))
                rows.append(("depth + vectors, EEVEE", timed(
                    lambda w=width, h=height: capture_motion(
                        scene, 3, w, h, Path(folder), colour=False, engine="EEVEE")),
                    plain_eevee))
            # The world's importance map, which a one-sample render builds unless told not to.
            world = scene.world.cycles
            one_sample = {}
            for method in ("AUTOMATIC", "NONE"):
                world.sampling_method = method
                one_sample[method] = timed(lambda w=width, h=height: _plain_render(
                    scene, "CYCLES", w, h, 1, denoise=False))
            world.sampling_method = "NONE"
            rows.append(("1-sample Cycles render, world importance map built",
                         one_sample["AUTOMATIC"], one_sample["AUTOMATIC"]))
            rows.append(("1-sample Cycles render, world map skipped",
                         one_sample["NONE"], one_sample["AUTOMATIC"]))
            for what, seconds, baseline in rows:
                print(f"| {width}x{height} | {what} | {seconds:.3f} | {seconds / baseline:.2f}x |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
