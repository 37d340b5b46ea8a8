"""FLUX.1 Depth (`FluxControlPipeline`): the depth picture is VAE-encoded and concatenated with the
latents channel-wise (the transformer has twice the input channels).

Depth goes in as `control_image=` (PIL RGB; the pipeline normalises it to [-1,1]). Weights:
FLUX.1-Depth-dev, or FLUX.1-dev with the FLUX.1-Depth-dev LoRA given as a LoRA (it widens the
transformer's input). No negative prompt, no control strength (the model is the control). With a
mask (and the render as init image) it inpaints through `FluxControlInpaintPipeline`, made from
the same components: the depth still goes in concatenated, the kept latents are blended back at
every step.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import FluxControlInpaintPipeline, FluxControlPipeline, FluxTransformer2DModel
from PIL import Image

from t2i_core.presets import FAMILY_INFO

from ..weights import Source
from . import common

NAME = "flux_depth"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.bfloat16
FLOW_MATCH = True
OPTIONAL_ROLES = SPLIT_ROLES = common.SPLIT_ROLES
CONFIGS = {"base": "black-forest-labs/FLUX.1-Depth-dev"}
BASE_CLASSES = ("FluxControlPipeline", "FluxPipeline")
CHECKPOINT_TYPES = ("flux-depth", "flux-dev")
PREVIEW_TAESD = "madebyollin/taef1"


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    common.check_family(weights["base"], NAME, "base", BASE_CLASSES, CHECKPOINT_TYPES)
    return common.load_transformer_pipeline(FluxControlPipeline, FluxTransformer2DModel,
                                            weights["base"], dtype, configs.get("base"),
                                            parts=weights)


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    kwargs = common.pipeline_kwargs(job, callback)
    kwargs.update(control_image=job.depth, width=job.width, height=job.height,
                  guidance_scale=job.request.guidance)
    if job.mask is not None:
        return variant(FluxControlInpaintPipeline)(
            image=job.render, mask_image=job.mask, strength=job.img2img_strength(),
            **kwargs).images[0]
    return pipe(**kwargs).images[0]


latent_grid = common.packed_latent_grid
decode_grid = common.flux_decode
