"""Depth capture cost as a ratio to a plain render of the same scene with the same engine,
measured in one run (absolute seconds vary too much between machines to mean anything).

    .venv/bin/python bench/depth_capture.py [--sizes 512 1024] [--repeats 3] [--json out.json]

Each figure is the median of `--repeats` runs after one warm-up (EEVEE compiles shaders on its
first render). The plain render uses the engine's default settings, except Cycles, which is
capped at 16 samples so a CPU-only machine finishes (the cap makes Cycles ratios look worse,
not better). Goal: the compositor path at most 1.5x a plain Workbench render.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if "t2i_src" not in sys.modules:  # the source as a package, without its bpy-registering init
    package = types.ModuleType("t2i_src")
    package.__path__ = [str(ROOT)]
    sys.modules["t2i_src"] = package
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402
from t2i_src.compositor import compat  # noqa: E402
from t2i_src.compositor.capture import capture_depth  # noqa: E402

from devtools.scenes import demo_scene  # noqa: E402

METHODS = [("WORKBENCH", "COMPOSITOR"), ("CYCLES", "COMPOSITOR"), ("CYCLES", "SHADER"),
           ("EEVEE", "COMPOSITOR"), ("EEVEE", "SHADER")]
CYCLES_PLAIN_SAMPLES = 16


def _median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _scene(engine: str, size: int) -> bpy.types.Scene:
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = demo_scene(bpy.context.scene)
    scene.render.engine = compat.ENGINE_IDS[engine]
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.cycles.samples = CYCLES_PLAIN_SAMPLES
    return scene


def measure(sizes: list[int], repeats: int, engines: set[str]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            for engine in sorted(engines, key=lambda e: [m[0] for m in METHODS].index(e)):
                scene = _scene(engine, size)
                scene.render.filepath = str(Path(folder) / "plain")
                plain = _median_seconds(lambda: bpy.ops.render.render(write_still=False),
                                        repeats)
                for method_engine, path in METHODS:
                    if method_engine != engine:
                        continue
                    def run(s=scene, n=size, p=path, e=engine):
                        capture_depth(s, n, n, path=p, engine=e)

                    capture = _median_seconds(run, repeats)
                    rows.append({"size": size, "engine": engine, "path": path,
                                 "plain_s": round(plain, 4), "capture_s": round(capture, 4),
                                 "ratio": round(capture / plain, 3)})
                    print(_row(rows[-1]), flush=True)
    return rows


def _row(row: dict) -> str:
    return (f"| {row['size']}² | {row['engine']:<9} | {row['path']:<10} | {row['plain_s']:8.3f} "
            f"| {row['capture_s']:8.3f} | {row['ratio']:6.2f}x |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["WORKBENCH", "CYCLES", "EEVEE"],
                        choices=["WORKBENCH", "CYCLES", "EEVEE"])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    print(f"Blender {bpy.app.version_string}")
    print("| size | engine    | path       | plain s  | capture s | ratio  |")
    print("|---|---|---|---|---|---|")
    rows = measure(args.sizes, args.repeats, set(args.engines))
    if args.json:
        args.json.write_text(json.dumps({"blender": bpy.app.version_string, "rows": rows},
                                        indent=2))
    workbench = [r for r in rows if r["engine"] == "WORKBENCH"]
    if workbench and max(r["ratio"] for r in workbench) > 1.5:
        print("goal missed: the compositor path costs more than 1.5x a plain Workbench render")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
