"""Batch throughput: does capturing frame N+1 while frame N generates pay off?

Runs in one Blender (the bpy module) with a warm backend and the tiny model:
  single  = the mean time of one frame done alone (capture, then generate, then record)
  batch   = the wall time of batch.run over N frames (captures overlap generation)
and prints batch / (N x single). Below 1.0 means the overlap saves time. Both use the same
depth range policy (auto), size and steps, measured in the same run.

    .venv/bin/python bench/batch_throughput.py [--frames 8] [--size 512x384] [--steps 4]
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", default="512x384")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--backend-threads", type=int, default=0,
                        help="torch threads in the backend (0: its default, all cores)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="t2i-bench-"))
    os.environ["BLENDER_USER_RESOURCES"] = str(scratch / "user")
    sys.path.insert(0, str(ROOT))
    import bpy

    from devtools import extension, scenes

    module = extension.install(extension.build(scratch / "dist"))
    for name in ("t2i_core.batch_plan", "t2i_core.backend_process", "t2i_core.job_queue",
                 "blender_t2i.batch.runner", "blender_t2i.generation.scene_job"):
        importlib.import_module(f"{module}.{name}")
    core, pure = sys.modules[module].blender_t2i, sys.modules[module].t2i_core
    try:
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = scenes.demo_scene(bpy.context.scene)
        scene.frame_start, scene.frame_end = 1, args.frames
        near = bpy.data.objects["Near"]
        for frame, x in ((1, -1.5), (args.frames, 1.5)):
            near.location.x = x
            near.keyframe_insert("location", index=0, frame=frame)
        width, height = pure.batch_plan.parse_size(args.size)
        # --backend-threads 1 leaves Blender a core of its own, as a GPU backend would
        env = (("OMP_NUM_THREADS", str(args.backend_threads)),) if args.backend_threads else ()
        config = pure.backend_process.BackendConfig(python=sys.executable,
                                           cache_dir=scratch / "models",
                                           log_path=scratch / "backend.log", env=env)
        options = core.batch.runner.BatchOptions(
            frames=list(range(1, args.frames + 1)),
            out=pure.batch_plan.OutputPattern.parse(str(scratch / "batch")), backend=config,
            preset="tiny-sd15-depth", steps=args.steps, size=(width, height),
            depth_range="auto", prompt="stone blocks")
        core.batch.runner.apply_options(scene, options)
        depth = core.batch.runner.depth_options(scene, options)
        jobs = pure.job_queue.get_job_queue()
        base = core.generation.scene_job.job_settings(scene)

        def one_frame(frame: int, folder: Path) -> float:
            started = time.perf_counter()
            scene.frame_set(frame)
            job = core.generation.scene_job.prepare_job(scene, folder, base, stem=f"f{frame}",
                                                        depth_options=depth)
            handle = jobs.submit(job.request, config)
            core.generation.scene_job.record_result(job, handle.wait())
            return time.perf_counter() - started

        one_frame(1, scratch / "warm")  # load the model, compile shaders
        singles = [one_frame(f, scratch / "single") for f in range(1, args.frames + 1)]
        single = statistics.mean(singles)
        started = time.perf_counter()
        core.batch.runner.run(scene, options, say=lambda line: None)
        batch = time.perf_counter() - started
    finally:
        pure.job_queue.reset_job_queue(wait=True)
        shutil.rmtree(scratch, ignore_errors=True)
    ratio = batch / (args.frames * single)
    threads = args.backend_threads or "all"
    print(f"frames {args.frames} at {width}x{height}, {args.steps} steps, tiny-sd15-depth, "
          f"backend threads: {threads}")
    print(f"single frame (mean of {len(singles)}): {single:.3f} s")
    print(f"batch of {args.frames}: {batch:.3f} s ({batch / args.frames:.3f} s/frame)")
    print(f"batch / (frames x single) = {ratio:.3f}  (goal < 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
