"""Qwen-Image + ControlNet Union (`QwenImageControlNetPipeline` + `QwenImageControlNetModel`).

Depth goes in as `control_image=` (PIL RGB, VAE-encoded by the pipeline) at
`controlnet_conditioning_scale`. Guidance is Qwen's "true CFG" (`true_cfg_scale`), which only runs
with a negative prompt: an empty one is sent as " ", as the model card does.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    QwenImageControlNetModel,
    QwenImageControlNetPipeline,
    QwenImageTransformer2DModel,
)
from PIL import Image

from t2i_core.presets import FAMILY_INFO

from ..weights import Source
from . import common

NAME = "qwen_image_controlnet"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.bfloat16
FLOW_MATCH = True
OPTIONAL_ROLES = SPLIT_ROLES = common.SPLIT_ROLES
CONFIGS = {"base": "Qwen/Qwen-Image", "controlnet": "InstantX/Qwen-Image-ControlNet-Union"}
BASE_CLASSES = ("QwenImagePipeline", "QwenImageControlNetPipeline")


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    common.check_family(weights["base"], NAME, "base", BASE_CLASSES)
    common.check_family(weights["controlnet"], NAME, "controlnet", ("QwenImageControlNetModel",))
    controlnet = common.load_model(QwenImageControlNetModel, weights["controlnet"], dtype,
                                   configs.get("controlnet"))
    return common.load_transformer_pipeline(QwenImageControlNetPipeline,
                                            QwenImageTransformer2DModel, weights["base"], dtype,
                                            configs.get("base"), controlnet=controlnet,
                                            parts=weights)


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    return pipe(control_image=job.depth, width=job.width, height=job.height,
                true_cfg_scale=job.request.guidance,
                negative_prompt=job.request.negative_prompt or " ",
                controlnet_conditioning_scale=job.request.control_strength,
                **common.pipeline_kwargs(job, callback)).images[0]


latent_grid = common.packed_latent_grid


def decode_grid(pipe: Any, grid: torch.Tensor) -> torch.Tensor:
    """Qwen-Image's video-shaped VAE: unpack to (B, C, 1, h, w), undo the per-channel
    normalisation, decode, take the single frame."""
    vae = pipe.vae
    factor = pipe.vae_scale_factor
    _, _, rows, cols = grid.shape
    latents = pipe._unpack_latents(common.grid_to_tokens(grid), rows * 2 * factor,
                                   cols * 2 * factor, factor)
    latents = latents.to(common.decode_device(pipe), vae.dtype)
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents.device, latents.dtype)
    std = torch.tensor(vae.config.latents_std).view(shape).to(latents.device, latents.dtype)
    return vae.decode(latents * std + mean, return_dict=False)[0][:, :, 0]
