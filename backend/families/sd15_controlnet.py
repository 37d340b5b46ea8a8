"""SD 1.5 + depth ControlNet (`StableDiffusionControlNetPipeline`).

Depth goes in as `image=` (PIL RGB, near = white), scaled to [0,1] by the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
from PIL import Image

from ..protocol import GenerateRequest

NAME = "sd15_controlnet"
WEIGHT_ROLES = ("base", "controlnet")
SIZE_MULTIPLE = 8


def load(folders: dict[str, Path], device: str, dtype: torch.dtype) -> Any:
    controlnet = ControlNetModel.from_pretrained(folders["controlnet"], dtype=dtype,
                                                 use_safetensors=True)
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        folders["base"], controlnet=controlnet, dtype=dtype, use_safetensors=True,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def generate(pipe: Any, request: GenerateRequest, control_image: Image.Image,
             on_step: Callable[[int, int], None]) -> Image.Image:
    total = request.steps

    def callback(_pipe: Any, step: int, _timestep: Any, kwargs: dict) -> dict:
        on_step(step + 1, total)
        return kwargs

    # CPU generator: the same seed gives the same noise on every device
    generator = torch.Generator("cpu").manual_seed(request.seed)
    output = pipe(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt or None,
        image=control_image,
        width=request.width,
        height=request.height,
        num_inference_steps=request.steps,
        guidance_scale=request.guidance,
        controlnet_conditioning_scale=request.control_strength,
        generator=generator,
        callback_on_step_end=callback,
    )
    return output.images[0]
