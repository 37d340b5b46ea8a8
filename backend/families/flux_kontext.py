"""FLUX.1 Kontext (`FluxKontextPipeline`): instruction editing of one reference picture.

The reference is the first of the job's `reference_images` when sent, else the colour render,
else the depth picture; the prompt says what to make of it ("turn this clay render into a
photo..."). The output keeps the requested aspect at the requested area (`max_area`), rounded to
multiples of 16; Kontext's own snap to its training resolutions is switched off so the result
lines up with the camera.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import FluxKontextPipeline, FluxTransformer2DModel
from PIL import Image

from t2i_core.presets import FAMILY_INFO

from ..weights import Source
from . import common

NAME = "flux_kontext"
INFO = FAMILY_INFO[NAME]
ACCELERATOR_DTYPE = torch.bfloat16
FLOW_MATCH = True
OPTIONAL_ROLES = SPLIT_ROLES = common.SPLIT_ROLES
CONFIGS = {"base": "black-forest-labs/FLUX.1-Kontext-dev"}
BASE_CLASSES = ("FluxKontextPipeline", "FluxPipeline")
CHECKPOINT_TYPES = ("flux-dev",)
PREVIEW_TAESD = "madebyollin/taef1"


def load(weights: dict[str, Source], configs: dict[str, str | None], dtype: torch.dtype) -> Any:
    common.check_family(weights["base"], NAME, "base", BASE_CLASSES, CHECKPOINT_TYPES)
    return common.load_transformer_pipeline(FluxKontextPipeline, FluxTransformer2DModel,
                                            weights["base"], dtype, configs.get("base"),
                                            parts=weights)


def reference(job: common.Job) -> Image.Image:
    if job.references:
        return job.references[0]
    return job.render if job.render is not None else job.depth


def run(pipe: Any, job: common.Job, callback: common.StepCallback,
        variant: common.Variants) -> Image.Image:
    return pipe(image=reference(job), width=job.width, height=job.height,
                max_area=job.width * job.height, _auto_resize=False,
                guidance_scale=job.request.guidance,
                **common.pipeline_kwargs(job, callback)).images[0]


latent_grid = common.packed_latent_grid
decode_grid = common.flux_decode
