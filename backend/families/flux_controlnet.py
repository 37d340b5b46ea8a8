"""FLUX.1 + ControlNet (`FluxControlNetPipeline` + `FluxControlNetModel`).

Depth goes in as `control_image=` (PIL RGB, VAE-encoded by the pipeline) at
`controlnet_conditioning_scale`. Union ControlNets (e.g. Union-Pro) need `control_mode` in the model
spec (2 = depth for InstantX/Shakker Union-Pro); single-condition depth ControlNets take none.
With a mask (and the render as init image) it inpaints through `FluxControlNetInpaintPipeline`,
made from the same components, the depth still the ControlNet's control image.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    FluxControlNetInpaintPipeline,
    FluxControlNetModel,
    FluxControlNetPipeline,
    FluxTransformer2DModel,
)
from PIL import Image

from t2i_core.presets import FAMILY_INFO

from ..weights import Source
from . import common

NAME = "flux_controlnet"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.bfloat16
FLOW_MATCH = True
OPTIONAL_ROLES = SPLIT_ROLES = common.SPLIT_ROLES
CONFIGS = {"base": "black-forest-labs/FLUX.1-dev",
           "controlnet": "Shakker-Labs/FLUX.1-dev-ControlNet-Depth"}
BASE_CLASSES = ("FluxPipeline", "FluxControlNetPipeline")
CHECKPOINT_TYPES = ("flux-dev", "flux-schnell")
PREVIEW_TAESD = "madebyollin/taef1"


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    common.check_family(weights["base"], NAME, "base", BASE_CLASSES, CHECKPOINT_TYPES)
    common.check_family(weights["controlnet"], NAME, "controlnet", ("FluxControlNetModel",))
    controlnet = common.load_model(FluxControlNetModel, weights["controlnet"], dtype,
                                   configs.get("controlnet"))
    return common.load_transformer_pipeline(FluxControlNetPipeline, FluxTransformer2DModel,
                                            weights["base"], dtype, configs.get("base"),
                                            controlnet=controlnet, parts=weights)


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    kwargs = common.pipeline_kwargs(job, callback)
    kwargs.update(control_image=job.depth, width=job.width, height=job.height,
                  guidance_scale=job.request.guidance,
                  controlnet_conditioning_scale=job.request.control_strength)
    if job.control_mode is not None:
        kwargs["control_mode"] = job.control_mode
    if job.mask is not None:
        return variant(FluxControlNetInpaintPipeline)(
            image=job.render, mask_image=job.mask, strength=job.img2img_strength(),
            **kwargs).images[0]
    return pipe(**kwargs).images[0]


latent_grid = common.packed_latent_grid
decode_grid = common.flux_decode
