"""Farm throughput: frames per hour for one worker and for two concurrent workers on this
machine, and the prepare step's cost as a fraction of the shot's.

Every run is a real farm task: `blender -b shot.blend -y -P scripts/t2i_batch.py -- ...`
through devtools/blender_cli.py (the bpy module), each a fresh process with its own backend,
so a task's start (Blender, the extension, the backend, the model load) counts as it does on
a farm. Measured in one run, the tiny model:

  prepare   the --prepare task over the shot's N frames (depth range locked over all of them)
  1 worker  one task for all N frames
  2 workers two tasks of N/2 frames started together into one folder (a folder of its own,
            prepared like the first)

    .venv/bin/python bench/farm_throughput.py [--frames 8] [--size 256x192] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "t2i_batch.py"
CLI = ROOT / "devtools" / "blender_cli.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", default="256x192")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--backend-threads", type=int, default=0,
                        help="torch threads in each backend (0: its default, all cores)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="t2i-farm-bench-"))
    os.environ["BLENDER_USER_RESOURCES"] = str(scratch / "user")
    sys.path.insert(0, str(ROOT))
    import bpy

    from devtools import extension, scenes

    extension.install(extension.build(scratch / "dist"))
    env = {**os.environ, "T2I_BACKEND_PYTHON": sys.executable}
    if args.backend_threads:
        env["OMP_NUM_THREADS"] = str(args.backend_threads)
    try:
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = scenes.demo_scene(bpy.context.scene)
        scene.frame_start, scene.frame_end = 1, args.frames
        near = bpy.data.objects["Near"]
        for frame, x in ((1, -1.5), (args.frames, 1.5)):
            near.location.x = x
            near.keyframe_insert("location", index=0, frame=frame)
        blend = scratch / "shot.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))

        def task(out: Path, *extra: str) -> list[str]:
            return [sys.executable, str(CLI), "-b", str(blend), "-y", "-P", str(SCRIPT), "--",
                    "--out", str(out), "--preset", "tiny-sd15-depth", "--steps",
                    str(args.steps), "--size", args.size, "--prompt", "stone blocks", *extra]

        def timed(*commands: list[str]) -> float:
            started = time.perf_counter()
            runs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True) for c in commands]
            for run in runs:
                output = run.communicate()[0]
                if run.returncode != 0:
                    raise SystemExit(f"task failed ({run.returncode}):\n{output}")
            return time.perf_counter() - started

        every = f"1-{args.frames}"
        half = args.frames // 2
        # the tiny model is built once on first use: not part of any figure
        timed(task(scratch / "warm", "--frames", "1"))
        prepare = timed(task(scratch / "one", "--prepare", "--frames", every))
        one = timed(task(scratch / "one", "--shot", "--frames", every))
        timed(task(scratch / "two", "--prepare", "--frames", every))
        two = timed(task(scratch / "two", "--shot", "--frames", f"1-{half}"),
                    task(scratch / "two", "--shot", "--frames", f"{half + 1}-{args.frames}"))
        for folder in ("one", "two"):
            manifest = json.loads((scratch / folder / "manifest.json").read_text())
            assert len(manifest["frames"]) == args.frames, folder
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    per_hour_one, per_hour_two = args.frames / one * 3600, args.frames / two * 3600
    threads = args.backend_threads or "all"
    print(f"{args.frames} frames at {args.size}, {args.steps} steps, tiny-sd15-depth, "
          f"{os.cpu_count()} CPU cores, backend threads: {threads}")
    print(f"prepare task: {prepare:.2f} s")
    print(f"1 worker:  {one:.2f} s -> {per_hour_one:.0f} frames/hour")
    print(f"2 workers: {two:.2f} s -> {per_hour_two:.0f} frames/hour "
          f"({per_hour_two / per_hour_one:.2f}x one worker)")
    print(f"prepare / (prepare + 1-worker shot) = {prepare / (prepare + one):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
