"""Z-Image Turbo + Fun ControlNet Union (`ZImageControlNetPipeline` + `ZImageControlNetModel`).

Depth goes in as `control_image=` (PIL RGB, VAE-encoded by the pipeline); the union model infers
the condition type, so there is no control mode and no control start/end. Turbo is distilled: 8
steps, guidance 0 (the negative prompt only counts with guidance > 0). The ControlNet ships as a
single .safetensors file (alibaba-pai); its config comes from `controlnet_config` or the
diffusers-format repo in the HF cache.

Inpainting needs the 2.0/2.1 ControlNet (33 control channels: the depth's latents, the mask and
the masked render's latents; `ZImageControlNetInpaintPipeline`, made from the same components);
1.0 refuses a mask. The mask only conditions the ControlNet: the white part is generated from
noise whatever the strength, and the kept part is the render pasted back.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    ZImageControlNetInpaintPipeline,
    ZImageControlNetModel,
    ZImageControlNetPipeline,
    ZImageTransformer2DModel,
)
from PIL import Image

from t2i_core.presets import FAMILY_INFO
from t2i_core.protocol import ErrorCode

from ..errors import BackendError
from ..weights import Source
from . import common

NAME = "zimage_controlnet"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.bfloat16
FLOW_MATCH = True
OPTIONAL_ROLES = SPLIT_ROLES = common.SPLIT_ROLES
CONFIGS = {"base": "Tongyi-MAI/Z-Image-Turbo",
           "controlnet": "hlky/Z-Image-Turbo-Fun-Controlnet-Union"}
BASE_CLASSES = ("ZImagePipeline", "ZImageControlNetPipeline")
CHECKPOINT_TYPES = ("z-image-turbo",)
CONTROLNET_TYPES = ("z-image-turbo-controlnet", "z-image-turbo-controlnet-2.0",
                    "z-image-turbo-controlnet-2.1")


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    common.check_family(weights["base"], NAME, "base", BASE_CLASSES, CHECKPOINT_TYPES)
    common.check_family(weights["controlnet"], NAME, "controlnet", ("ZImageControlNetModel",),
                        CONTROLNET_TYPES)
    controlnet = common.load_model(ZImageControlNetModel, weights["controlnet"], dtype,
                                   configs.get("controlnet"))
    return common.load_transformer_pipeline(ZImageControlNetPipeline, ZImageTransformer2DModel,
                                            weights["base"], dtype, configs.get("base"),
                                            controlnet=controlnet, parts=weights)


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    kwargs = common.pipeline_kwargs(job, callback)
    kwargs.update(control_image=job.depth, width=job.width, height=job.height,
                  guidance_scale=job.request.guidance,
                  negative_prompt=job.request.negative_prompt or None,
                  controlnet_conditioning_scale=job.request.control_strength)
    if job.mask is not None:
        if pipe.controlnet.config.control_in_dim == pipe.transformer.in_channels:
            raise BackendError(
                ErrorCode.BAD_REQUEST,
                "this Z-Image ControlNet (Fun ControlNet Union 1.0) takes the depth alone and "
                "cannot inpaint",
                hint="Use the Fun ControlNet Union 2.0 or 2.1 weights, which take a mask "
                     "beside the depth, or generate without a mask.")
        return variant(ZImageControlNetInpaintPipeline)(
            image=job.render, mask_image=job.mask, **kwargs).images[0]
    return pipe(**kwargs).images[0]


latent_grid = common.unet_latent_grid  # Z-Image patchifies inside the transformer


def decode_grid(pipe: Any, grid: torch.Tensor) -> torch.Tensor:
    vae = pipe.vae
    latents = grid.to(common.decode_device(pipe), vae.dtype)
    latents = latents / vae.config.scaling_factor + vae.config.shift_factor
    return vae.decode(latents, return_dict=False)[0]
