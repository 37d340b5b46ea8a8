"""What each memory mode costs and saves: the same SD 1.5-size ControlNet job (random weights,
built from configs) through the backend in every mode, with the job's device-memory peak as the
backend reports it (CUDA only) and the warm job time, as ratios to 'full' from this one run.

    python bench/memory_modes.py --device cuda [--size 1024] [--steps 10]

Each mode is a reload (the mode is part of the pipeline's cache key), so each gets a first job
(load + preview fit + run) and then a timed warm one. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backend_overhead import Backend, build_model, protocol_run  # the bench folder's sibling

MODES = ("full", "model_offload", "group_offload", "fp8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--model-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "t2i-bench-sd15-full")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    roles = build_model(args.model_dir)
    work = Path(tempfile.mkdtemp(prefix="t2i-memory-"))
    ramp = np.linspace(0, 255, args.size * args.size).reshape(args.size, args.size)
    Image.fromarray(ramp.astype(np.uint8)).convert("RGB").save(work / "depth.png")
    backend = Backend(work / "cache", work / "backend.log")
    backend.send({"type": "hello"})
    backend.wait("ready")

    rows = []
    for mode in MODES:
        first, _ = protocol_run(backend, roles, work / "depth.png", work, args, preview=True,
                                memory_mode=mode)
        warm, result = protocol_run(backend, roles, work / "depth.png", work, args, preview=True,
                                    memory_mode=mode)
        rows.append((mode, first, warm, result.get("peak_memory")))
    backend.close()

    full_time, full_peak = rows[0][2], rows[0][3]
    print(f"\n{args.size}x{args.size}, {args.steps} steps, device {args.device}")
    print(f"  {'mode':<14} {'first job':>10} {'warm job':>9} {'vs full':>8} "
          f"{'peak GiB':>9} {'vs full':>8}")
    for mode, first, warm, peak in rows:
        peak_text = f"{peak / 2**30:9.2f} {peak / full_peak:7.2f}x" if peak and full_peak \
            else f"{'n/a':>9} {'':>8}"
        print(f"  {mode:<14} {first:9.2f}s {warm:8.2f}s {warm / full_time:7.2f}x {peak_text}")
    failures = [line for line in (work / "backend.log").read_text().splitlines()
                if "previews disabled" in line or "ERROR" in line]
    print("  step previews: " + ("; ".join(failures) if failures else "worked in every mode"))


if __name__ == "__main__":
    main()
