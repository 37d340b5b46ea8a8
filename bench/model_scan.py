"""Model library scan: 1,000 files cold (every header read) and warm (from the scan cache).

Writes a fake ComfyUI install of N .safetensors files whose headers are as long as real ones
(a kohya SD 1.5 LoRA has ~800 tensors, a checkpoint ~2,000; a scan's cost is the header, not
the weights, so each tensor holds one number), then times in one run:
  cold     = a scan with an empty cache
  warm     = the same scan again with the cache it wrote
  touched  = warm after 1% of the files changed (only those are read again)
and prints warm / cold and touched / cold.

    .venv/bin/python bench/model_scan.py [--files 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from t2i_core import model_library as lib  # noqa: E402

_KINDS = (  # (ComfyUI folder, share of files, a real key pattern, tensors per file)
    ("loras", 0.6, "lora_unet_down_blocks_{i}_attentions_0_proj_in.lora_down.weight", 800),
    ("checkpoints", 0.25, "model.diffusion_model.input_blocks.{i}.0.in_layers.0.weight", 2000),
    ("controlnet", 0.1, "control_model.input_blocks.{i}.0.in_layers.0.weight", 700),
    ("vae", 0.05, "encoder.down.{i}.block.0.conv1.weight", 250),
)
_MARKERS = {"loras": [], "checkpoints": ["cond_stage_model.transformer.text_model.x"],
            "controlnet": ["control_model.time_embed.0.weight"],
            "vae": ["decoder.conv_in.weight"]}


def _write(path: Path, names: list[str]) -> None:
    header = {name: {"dtype": "F16", "shape": [1], "data_offsets": [2 * i, 2 * i + 2]}
              for i, name in enumerate(names)}
    header["decoder.conv_in.weight"] = {"dtype": "F16", "shape": [1, 4, 1, 1],
                                        "data_offsets": [2 * len(names), 2 * len(names) + 8]}
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + bytes(2 * len(names) + 8))


def write_install(root: Path, files: int) -> None:
    count = 0
    for folder, share, pattern, tensors in _KINDS:
        target = root / "models" / folder
        target.mkdir(parents=True, exist_ok=True)
        for n in range(round(files * share)):
            names = [pattern.format(i=i) for i in range(tensors)] + _MARKERS[folder]
            _write(target / f"{folder}_{n:04d}.safetensors", names)
            count += 1
    print(f"{count} files, {sum(p.stat().st_size for p in root.rglob('*')) / 2**20:.0f} MiB "
          "of headers")


def _timed(roots: lib.Roots, cache: Path | None) -> tuple[float, lib.Library]:
    started = time.perf_counter()
    library = lib.scan(roots, lib.ScanCache(cache) if cache else None)
    return time.perf_counter() - started, library


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="t2i-bench-scan-"))
    try:
        write_install(scratch / "comfyui", args.files)
        roots = lib.Roots(comfyui=str(scratch / "comfyui"))
        cold, warm, touched = [], [], []
        for run in range(args.repeat):
            cache = scratch / f"cache{run}.json"
            seconds, library = _timed(roots, cache)
            cold.append(seconds)
            assert library.headers_read == len(library.entries) + len(library.skipped)
            seconds, library = _timed(roots, cache)
            warm.append(seconds)
            assert library.headers_read == 0
            changed = sorted((scratch / "comfyui/models/loras").iterdir())[:args.files // 100]
            for path in changed:
                os.utime(path, ns=(time.time_ns(), time.time_ns() + run + 1))
            seconds, library = _timed(roots, cache)
            touched.append(seconds)
            assert library.headers_read == len(changed)
        c, w, t = (statistics.median(x) for x in (cold, warm, touched))
        print(f"cold scan    {c * 1000:8.1f} ms  ({c / args.files * 1e6:.0f} us a file)")
        print(f"warm scan    {w * 1000:8.1f} ms  warm / cold = {w / c:.3f}")
        print(f"1% changed   {t * 1000:8.1f} ms  touched / cold = {t / c:.3f}")
        print(f"(median of {args.repeat}; page cache warm for all: the cold scan's cost is "
              "reading and parsing headers, not the disk)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
