#!/usr/bin/env bash
# Steps/s of an SD 1.5-sized depth ControlNet pipeline (random weights built from configs: no
# internet needed) at 512x512, 20 steps, on CUDA: a plain diffusers script vs our backend
# (through the real protocol), each with our speed options off (fp32, eager) and on (fp16,
# channels-last, torch.compile). Warm figures: median of 3 runs after 1 warm-up (the compile
# happens in the warm-up).
#
#   bench/gpu_bench.sh [python]     # default: .venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-${PYTHON:-.venv/bin/python}}"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
"$PYTHON" - <<'PY'
import statistics, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, "bench")
import numpy as np
import torch
from PIL import Image

from backend_overhead import Backend, build_model

assert torch.cuda.is_available(), "gpu_bench.sh needs a CUDA device"
SIZE, STEPS, RUNS = 512, 20, 3
roles = build_model(Path(tempfile.gettempdir()) / "t2i-bench-sd15-full")
work = Path(tempfile.mkdtemp(prefix="t2i-gpu-bench-"))
ramp = np.linspace(0, 255, SIZE * SIZE).reshape(SIZE, SIZE).astype(np.uint8)
depth = Image.fromarray(ramp).convert("RGB")
depth.save(work / "depth.png")
OPTIONS = {"off": {"dtype": "float32", "compile": False},
           "on": {"dtype": "float16", "compile": True}}


def plain(options):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    dtype = getattr(torch, options["dtype"])
    controlnet = ControlNetModel.from_pretrained(roles["controlnet"], dtype=dtype)
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        roles["base"], controlnet=controlnet, dtype=dtype, safety_checker=None,
        requires_safety_checker=False).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    if options["compile"]:
        for model in (pipe.unet, pipe.controlnet):
            model.to(memory_format=torch.channels_last)
            model.compile()
    times = []
    for _ in range(RUNS + 1):
        torch.cuda.synchronize()
        started = time.perf_counter()
        pipe(prompt="a house", image=depth, width=SIZE, height=SIZE, num_inference_steps=STEPS,
             guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(1)).images[0]
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    del pipe, controlnet
    torch.cuda.empty_cache()
    return STEPS / statistics.median(times[1:])


def ours(options):
    """(steps/s with step previews, as the add-on asks, and without), one backend process:
    the warm-up (and compile) happens once."""
    backend = Backend(work / "cache", work / "backend.log")
    model = {"family": "sd15_controlnet", "base": str(roles["base"]),
             "controlnet": str(roles["controlnet"]), "device": "cuda", **options}
    times = {True: [], False: []}
    for run in range(2 * RUNS + 1):
        preview = run <= RUNS
        started = time.perf_counter()
        backend.send({"type": "generate", "id": f"r{run}", "prompt": "a house", "seed": 1,
                      "steps": STEPS, "guidance": 7.5, "width": SIZE, "height": SIZE,
                      "control_image": str(work / "depth.png"), "output_dir": str(work),
                      "model": model, "memory_mode": "full",
                      "preview": {"every": 1} if preview else False})
        backend.wait("result", f"r{run}")
        times[preview].append(time.perf_counter() - started)
    backend.close()
    return (STEPS / statistics.median(times[True][1:]), STEPS / statistics.median(times[False]))


print(f"{torch.cuda.get_device_name()}: SD 1.5 + ControlNet (random weights), "
      f"{SIZE}x{SIZE}, {STEPS} steps")
for name, options in OPTIONS.items():
    direct, (backend, quiet) = plain(options), ours(options)
    print(f"  speed options {name:<3}  plain diffusers {direct:6.2f} steps/s   "
          f"backend {backend:6.2f} steps/s ({quiet:6.2f} without previews)   "
          f"backend/plain {backend / direct:5.3f} ({quiet / direct:5.3f})")
PY
