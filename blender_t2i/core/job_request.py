"""What a generate job is, independent of Blender: size rules, ids, the request message."""

from __future__ import annotations

import time
from typing import Any

from . import protocol
from .presets import Preset, snap_size

MAX_SIDE_DEFAULT = 4096


def job_size(render_width: int, render_height: int, percentage: int, use_render_size: bool,
             width: int, height: int, preset: Preset) -> tuple[int, int]:
    """The generation size: the camera's render resolution (with its percentage) or the
    user's own, snapped to the model's size multiple."""
    if use_render_size:
        width = render_width * percentage // 100
        height = render_height * percentage // 100
    if width <= 0 or height <= 0:
        raise ValueError(f"the image size {width}x{height} is empty: set a width and height")
    multiple = preset.size_multiple
    return snap_size(width, multiple), snap_size(height, multiple)


def new_job_stem(preset: Preset, seed: int) -> str:
    """A file-name-safe, sortable, unique stem shared by a job's depth and result files."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now * 1000) % 1000:03d}"
    return f"{stamp}_{preset.name}_s{seed}"


def generate_request(job_id: str, preset: Preset, prompt: str, negative_prompt: str, seed: int,
                     steps: int, guidance: float, control_strength: float, size: tuple[int, int],
                     control_image: str, output_dir: str) -> dict[str, Any]:
    message = {
        "type": protocol.GENERATE, "id": job_id, "model": preset.model_spec(),
        "prompt": prompt, "negative_prompt": negative_prompt, "seed": seed, "steps": steps,
        "guidance": guidance, "control_strength": control_strength,
        "width": size[0], "height": size[1],
        "control_image": control_image, "output_dir": output_dir,
    }
    protocol.parse_generate(message)  # fail here, with the field's name, not in the backend
    return message
