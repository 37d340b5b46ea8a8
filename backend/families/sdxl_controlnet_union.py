"""SDXL + ControlNet Union in depth mode (`StableDiffusionXLControlNetUnionPipeline`).

One ControlNet for many conditions: depth goes in as `control_image=[depth]` with
`control_mode=[1]` (0 pose, 1 depth, 2 hed, 3 canny, 4 normal, 5 seg; a spec may set
`control_mode`). A colour render makes it img2img (`...UnionImg2ImgPipeline`), a mask with it
inpainting (`...UnionInpaintPipeline`, the depth still the control image). For xinsir's
ProMax weights point `controlnet` at `diffusion_pytorch_model_promax.safetensors` with
`controlnet_config` naming a folder holding `config_promax.json` renamed to config.json.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetUnionModel,
    StableDiffusionXLControlNetUnionImg2ImgPipeline,
    StableDiffusionXLControlNetUnionInpaintPipeline,
    StableDiffusionXLControlNetUnionPipeline,
)
from PIL import Image

from t2i_core.presets import FAMILY_INFO

from ..weights import Source
from . import common, sdxl_controlnet

NAME = "sdxl_controlnet_union"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.float16
FLOW_MATCH = False
OPTIONAL_ROLES = ("vae",)
CONFIGS = {"base": "stabilityai/stable-diffusion-xl-base-1.0",
           "controlnet": "xinsir/controlnet-union-sdxl-1.0"}
DEPTH_MODE = 1
PREVIEW_TAESD = "madebyollin/taesdxl"


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    common.check_family(weights["base"], NAME, "base", sdxl_controlnet.BASE_CLASSES,
                        sdxl_controlnet.CHECKPOINT_TYPES)
    common.check_family(weights["controlnet"], NAME, "controlnet", ("ControlNetUnionModel",))
    controlnet = common.load_model(ControlNetUnionModel, weights["controlnet"], dtype,
                                   configs.get("controlnet"))
    extra: dict[str, Any] = {}
    if "vae" in weights:
        extra["vae"] = common.load_model(AutoencoderKL, weights["vae"], dtype, configs.get("vae"))
    pipe = common.load_pipeline(StableDiffusionXLControlNetUnionPipeline, weights["base"], dtype,
                                configs.get("base"), controlnet=controlnet, **extra)
    common.check_controlnet_fits(pipe, NAME, weights["controlnet"].reference)
    return pipe


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    mode = DEPTH_MODE if job.control_mode is None else job.control_mode
    kwargs = common.pipeline_kwargs(job, callback)
    kwargs.update(negative_prompt=job.request.negative_prompt or None,
                  width=job.width, height=job.height, guidance_scale=job.request.guidance,
                  controlnet_conditioning_scale=job.request.control_strength,
                  control_image=[job.depth], control_mode=[mode])
    if job.mask is not None:
        inpaint = variant(StableDiffusionXLControlNetUnionInpaintPipeline)
        return inpaint(image=job.render, mask_image=job.mask, strength=job.img2img_strength(),
                       **kwargs).images[0]
    if job.render is not None:
        img2img = variant(StableDiffusionXLControlNetUnionImg2ImgPipeline)
        return img2img(image=job.render, strength=job.img2img_strength(), **kwargs).images[0]
    return pipe(**kwargs).images[0]


latent_grid = common.unet_latent_grid
decode_grid = common.sd_decode
