"""`make demo`: a scene's depth through the backend and back, in real Blender, offline.

Builds the extension zip, installs it into a scratch Blender user folder, builds a small scene
(a floor and three boxes at known distances under a camera), runs `t2i.capture_depth` and
`t2i.generate` with the tiny random-weight model, and writes into the output folder:
depth.png, result.png, sheet.png (side by side, labelled) and run.json (settings and timings).
The tiny model proves the plumbing, not image quality: its result is structured noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    parser.add_argument("--prompt", default="a sunlit courtyard with stone blocks, photo")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    out: Path = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="t2i-demo-"))
    os.environ["BLENDER_USER_RESOURCES"] = str(scratch / "user")  # keep the real config clean
    sys.path.insert(0, str(ROOT))
    import bpy

    from devtools import extension, scenes

    try:
        module = extension.install(extension.build(scratch / "dist"))
        bpy.ops.wm.read_homefile(use_empty=True)
        scene = scenes.demo_scene(bpy.context.scene)
        bpy.ops.wm.save_as_mainfile(filepath=str(out / "scene.blend"))  # results go to //t2i/
        prefs = bpy.context.preferences.addons[module].preferences
        prefs.backend_python = sys.executable  # this venv has torch + diffusers
        settings = scene.t2i
        settings.model_preset = "tiny-sd15-depth"
        settings.prompt = args.prompt
        settings.negative_prompt = "blurry"
        settings.seed = args.seed

        _run(bpy.ops.t2i.capture_depth)
        _run(bpy.ops.t2i.generate)
        record_path = max((out / "t2i").glob("*.json"), key=lambda p: p.stat().st_mtime)
        record = json.loads(record_path.read_text())
        shutil.copyfile(record["depth"], out / "depth.png")
        shutil.copyfile(record["result"], out / "result.png")
        _contact_sheet(out / "depth.png", out / "result.png", out / "sheet.png", record)
        record["timings"]["demo_total"] = round(time.perf_counter() - started, 3)
        record["blender"] = bpy.app.version_string
        (out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    finally:
        sys.modules[module].t2i_core.job_queue.reset_job_queue(wait=True)
        shutil.rmtree(scratch, ignore_errors=True)
    timings = record["timings"]
    print(f"demo: {out}/sheet.png  (capture {timings['capture']:.2f} s, backend start "
          f"{timings['backend_start']:.1f} s, load {timings['load']:.1f} s, generate "
          f"{timings['generate']:.2f} s, all {timings['demo_total']:.1f} s)")
    return 0


def _run(operator) -> None:
    result = operator()
    if result != {"FINISHED"}:
        raise SystemExit(f"{operator.idname_py()} returned {result}")


def _contact_sheet(depth: Path, result: Path, target: Path, record: dict) -> None:
    from PIL import Image, ImageDraw

    with Image.open(depth) as d, Image.open(result) as r:
        left, right = d.convert("RGB"), r.convert("RGB")
    band = 28
    sheet = Image.new("RGB", (left.width + right.width, max(left.height, right.height) + band),
                      "white")
    sheet.paste(left, (0, band))
    sheet.paste(right, (left.width, band))
    draw = ImageDraw.Draw(sheet)
    near, far = record["depth_range"]
    draw.text((6, 8), f"depth the model sees (inverse, {near:.2f}-{far:.2f} m)", fill="black")
    draw.text((left.width + 6, 8), f"result: {record['model']}, seed {record['seed']}, "
                                   f"{record['steps']} steps", fill="black")
    sheet.save(target)


if __name__ == "__main__":
    sys.exit(main())
