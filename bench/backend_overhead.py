"""What the backend process and its protocol cost on top of diffusers.

Warm: the same SD 1.5-architecture ControlNet pipeline (random weights, built from configs, no
download), same steps, size and seed, timed (a) called directly in this process and (b) as jobs
through `python -m backend` (JSON lines, files, step previews, PNG writing). Cold: spawn +
imports until `ready`, then the first job (which loads the model).

    .venv/bin/python bench/backend_overhead.py [--size 128] [--steps 4] [--runs 3] [--device cpu]

The goal is a warm overhead of at most 5% where one step takes over 100 ms. Figures are printed,
not asserted: timings belong in benchmarks, not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Backend:
    def __init__(self, cache_dir: Path, log: Path):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        self.log = open(log, "ab")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend", "--cache-dir", str(cache_dir)], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
        self.lines: list[dict[str, Any]] = []
        self.ready = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.ready:
                self.lines.append(json.loads(line))
                self.ready.notify_all()

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def wait(self, kind: str, job_id: str | None = None) -> dict[str, Any]:
        with self.ready:
            while True:
                for index, event in enumerate(self.lines):
                    if event["type"] in (kind, "error") and event.get("id") == job_id:
                        del self.lines[: index + 1]
                        if event["type"] == "error":
                            raise RuntimeError(event)
                        return event
                if not self.ready.wait(timeout=1800):
                    raise TimeoutError(kind)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(120)
        self.log.close()


def build_model(folder: Path) -> dict[str, Path]:
    from backend.tiny.models import build_sd15_controlnet_full_size

    marker = folder / "roles.json"
    if marker.exists():
        return {k: Path(v) for k, v in json.loads(marker.read_text()).items()}
    roles = build_sd15_controlnet_full_size(folder)
    marker.write_text(json.dumps({k: str(v) for k, v in roles.items()}))
    return roles


def load_direct(roles: dict[str, Path], device: str) -> Any:
    """The same pipeline the backend's family builds, to be called directly."""
    import torch

    from backend.devices import pick_dtype
    from backend.families import sd15_controlnet
    from backend.weights import Source

    dtype = pick_dtype(device, half=torch.float16)
    pipe = sd15_controlnet.load({r: Source(str(p), p) for r, p in roles.items()}, {}, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def direct_run(pipe: Any, depth: Image.Image, args: argparse.Namespace,
               save_to: Path | None = None) -> tuple[float, float]:
    """(seconds for the pipeline call, seconds to also write its PNG the way the backend does)
    The second figure separates what any script pays for keeping its result from what the
    protocol costs: a random model's output is incompressible noise, slow to PNG-encode."""
    import torch

    from backend.runner import write_png_atomic

    started = time.perf_counter()
    image = pipe(prompt="a house", image=depth, width=args.size, height=args.size,
                 num_inference_steps=args.steps, guidance_scale=7.5,
                 controlnet_conditioning_scale=1.0,
                 generator=torch.Generator("cpu").manual_seed(1)).images[0]
    called = time.perf_counter() - started
    if save_to is not None:
        write_png_atomic(image, save_to, {"t2i:prompt": "a house"})
    return called, time.perf_counter() - started


_jobs = iter(range(1_000_000))


def protocol_run(backend: Backend, roles: dict[str, Path], depth_path: Path, work: Path,
                 args: argparse.Namespace, preview: bool, memory_mode: str = "auto"
                 ) -> tuple[float, dict[str, Any]]:
    """(job wall time from send to result, the result event: the backend's own timings of the
    job's parts, its device-memory peak)"""
    job_id = f"job{next(_jobs)}"
    sent = time.perf_counter()
    backend.send({
        "type": "generate", "id": job_id, "prompt": "a house", "seed": 1,
        "steps": args.steps, "guidance": 7.5, "control_strength": 1.0,
        "width": args.size, "height": args.size, "control_image": str(depth_path),
        "output_dir": str(work / "out"), "preview": {"every": 1} if preview else False,
        "memory_mode": memory_mode,
        "model": {"family": "sd15_controlnet", "base": str(roles["base"]),
                  "controlnet": str(roles["controlnet"]), "device": args.device}})
    result = backend.wait("result", job_id)
    return time.perf_counter() - sent, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "t2i-bench-sd15-full")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    started = time.perf_counter()
    roles = build_model(args.model_dir)
    print(f"model: SD 1.5 architecture, random weights, in {args.model_dir} "
          f"({time.perf_counter() - started:.1f} s to build or find)")
    work = Path(tempfile.mkdtemp(prefix="t2i-bench-"))
    ramp = np.linspace(0, 255, args.size * args.size).reshape(args.size, args.size)
    depth = Image.fromarray(ramp.astype(np.uint8)).convert("RGB")
    depth_path = work / "depth.png"
    depth.save(depth_path)

    # Cold start: a fresh process until `ready`, then its first job (load + preview fit + run).
    started = time.perf_counter()
    backend = Backend(work / "cache", work / "backend.log")
    backend.send({"type": "hello"})
    backend.wait("ready")
    ready_s = time.perf_counter() - started
    first_job_s, _ = protocol_run(backend, roles, depth_path, work, args, preview=True)

    # Warm: interleaved, so load from other processes on the machine hits all three alike.
    pipe = load_direct(roles, args.device)
    direct_run(pipe, depth, args)
    direct, direct_saved, previews, quiet = [], [], [], []
    parts: dict[str, list[float]] = {}
    for _ in range(args.runs):
        job_s, result = protocol_run(backend, roles, depth_path, work, args, preview=True)
        timings = result["timings"]
        previews.append(job_s)
        for part, seconds in timings.items():
            parts.setdefault(part, []).append(seconds)
        parts.setdefault("outside", []).append(job_s - timings["total"])
        called, saved = direct_run(pipe, depth, args, save_to=work / "direct.png")
        direct.append(called)
        direct_saved.append(saved)
        quiet.append(protocol_run(backend, roles, depth_path, work, args, preview=False)[0])
    backend.close()

    base = statistics.median(direct)
    print(f"\n{args.size}x{args.size}, {args.steps} steps, {args.runs} warm runs each, "
          f"device {args.device}")
    step_ms = statistics.median(parts["generate"]) / args.steps * 1000
    print(f"  one step (in the backend)          {step_ms:8.0f} ms")
    print(f"  direct diffusers call              {base:8.3f} s (median)")
    saved = statistics.median(direct_saved)
    print(f"  direct call + writing its PNG      {saved:8.3f} s  ({saved - base:+.3f} s)")
    for label, runs in (("backend, previews every step", previews),
                        ("backend, previews off", quiet)):
        job = statistics.median(runs)
        print(f"  {label:<34} {job:8.3f} s  overhead {100 * (job - base) / base:+5.1f}%")
    print("  where a backend job's time goes (previews on, medians):")
    for part, label in (("load", "model lookup (already loaded)"),
                        ("inputs", "reading the depth picture"),
                        ("generate", "pipeline run, previews"),
                        ("write", "writing the result PNG"),
                        ("outside", "protocol, pipes, process")):
        print(f"    {label:<32} {statistics.median(parts[part]) * 1000:8.1f} ms")
    print("cold start")
    print(f"  spawn + imports until ready        {ready_s:8.2f} s")
    print(f"  first job (load + preview fit + run) {first_job_s:6.2f} s")


if __name__ == "__main__":
    main()
