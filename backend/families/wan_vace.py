"""Wan 2.1 VACE (`WanVACEPipeline`): a video from a clip of depth frames.

The depth frames go in as VACE's control `video` with no `mask`: the pipeline then takes the
mask as all ones, every pixel of every frame generated under the control (what VACE's depth
mode is, as its authors run it). The job's `reference_images`, when sent, are VACE's reference
pictures (subjects or a look to keep; each is fitted onto a white canvas of the frame size).
The clip is `control_frames`; a still job (no clip) is a clip of its one control image.

Wan's VAE makes one latent frame of every 4, so the model runs 4k + 1 frames: a clip of
another length is padded with its last depth frame and the extra frames are dropped, so every
frame sent gets its result. Sizes are multiples of 16 (8x VAE, 2x2 patches).

Wan cleans prompts with `ftfy` when it is installed; without it (it is optional here) the
pipeline module gets a stand-in that leaves the text as typed, which only matters for prompts
with broken Unicode (mojibake).
"""

from __future__ import annotations

import importlib.util
import logging
import types
from typing import Any

import torch
from diffusers import WanVACEPipeline, WanVACETransformer3DModel
from diffusers.pipelines.wan import pipeline_wan_vace
from PIL import Image

from t2i_core.presets import FAMILY_INFO

from ..weights import Source
from . import common

log = logging.getLogger("blender_t2i.backend")

NAME = "wan_vace"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.bfloat16
FLOW_MATCH = True
OPTIONAL_ROLES = SPLIT_ROLES = INFO.optional_roles  # the VAE and the UMT5 encoder as files
CONFIGS = {"base": "Wan-AI/Wan2.1-VACE-1.3B-diffusers"}
BASE_CLASSES = ("WanVACEPipeline",)

if importlib.util.find_spec("ftfy") is None and not hasattr(pipeline_wan_vace, "ftfy"):
    log.info("ftfy is not installed: Wan prompts are used as typed (no mojibake repair)")
    pipeline_wan_vace.ftfy = types.SimpleNamespace(fix_text=lambda text: text)


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    common.check_family(weights["base"], NAME, "base", BASE_CLASSES)
    return common.load_transformer_pipeline(WanVACEPipeline, WanVACETransformer3DModel,
                                            weights["base"], dtype, configs.get("base"),
                                            parts=weights)


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image | list[Image.Image]:
    """The clip's frames (one per depth frame sent), or the one picture of a still job."""
    frames = list(job.clip) or [job.depth]
    padded = frames + [frames[-1]] * (INFO.model_frames(len(frames)) - len(frames))
    video = pipe(video=padded, reference_images=list(job.references) or None,
                 conditioning_scale=job.request.control_strength, width=job.width,
                 height=job.height, num_frames=len(padded),
                 guidance_scale=job.request.guidance,
                 negative_prompt=job.request.negative_prompt or None, output_type="pil",
                 **common.pipeline_kwargs(job, callback)).frames[0]
    made = list(video[:len(frames)])
    return made if job.clip else made[0]


def latent_grid(pipe: Any, latents: torch.Tensor, job: common.Job) -> torch.Tensor:
    """(B, C, frames, h, w) video latents, references first -> the first frame's grid."""
    return latents[:, :, len(job.references)]


def decode_grid(pipe: Any, grid: torch.Tensor) -> torch.Tensor:
    """Each (C, h, w) grid decoded as a one-frame video, as the pipeline's final decode does
    (Wan's latents are normalised per channel by the VAE's mean and std)."""
    vae = pipe.vae
    latents = grid[:, :, None].to(common.decode_device(pipe), vae.dtype)
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, device=latents.device,
                        dtype=latents.dtype).view(shape)
    std = torch.tensor(vae.config.latents_std, device=latents.device,
                       dtype=latents.dtype).view(shape)
    return vae.decode(latents * std + mean, return_dict=False)[0][:, :, 0]
