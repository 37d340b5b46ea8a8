"""A tiny SD 1.5 checkpoint, depth ControlNet and LoRA that a real ComfyUI server loads
(CheckpointLoaderSimple, ControlNetLoader, LoraLoader), for the ComfyUI bridge's tests and the
`tiny` model reference on that backend.

ComfyUI tells an SD 1.5 checkpoint by its UNet's `model_channels` (320) and cross-attention
width (768), and builds its VAE and CLIP text encoder from fixed configs, so those stay at their
real sizes; the UNet and ControlNet keep the real widths but have two levels with one
attention level instead of four. Random weights: the pictures are noise, but a different depth
gives a different picture (the ControlNet's zero-initialised layers are woken as in
models._live_control_path). The ControlNet's hint block has ComfyUI's fixed channels
(16, 32, 96, 256: diffusers' defaults). Files are fp16, written once and atomically, the same
bytes for the same TINY_COMFYUI_VERSION.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from t2i_core.files import write_bytes_atomic
from t2i_core.presets import TINY_COMFYUI_CHECKPOINT, TINY_COMFYUI_CONTROLNET, TINY_COMFYUI_LORA

log = logging.getLogger("blender_t2i.backend")

CHECKPOINT_NAME = TINY_COMFYUI_CHECKPOINT
CONTROLNET_NAME = TINY_COMFYUI_CONTROLNET
LORA_NAME = TINY_COMFYUI_LORA  # kohya format, over the UNet's attention
TINY_COMFYUI_VERSION = "1"  # bump when the builder changes: older files are rebuilt
_STAMP = "t2i_tiny_comfyui"

_UNET_SHAPE = dict(block_out_channels=(320, 320), layers_per_block=2, cross_attention_dim=768,
                   attention_head_dim=8,
                   down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"))


def write_comfyui_models(models_root: Path) -> dict[str, Path]:
    """The tiny checkpoint in models_root/checkpoints, the ControlNet in models_root/controlnet
    and a LoRA for it in models_root/loras (the folders ComfyUI reads); role -> path. Files
    already there with this version's stamp are kept."""
    paths = {"checkpoint": models_root / "checkpoints" / CHECKPOINT_NAME,
             "controlnet": models_root / "controlnet" / CONTROLNET_NAME,
             "lora": models_root / "loras" / LORA_NAME}
    if all(_stamped(path) for path in paths.values()):
        return paths
    import torch

    for role, state in _build_states().items():
        _write_atomic({k: v.to(torch.float16).contiguous() for k, v in state.items()},
                      paths[role])
    log.info("wrote the tiny ComfyUI models in %s", models_root)
    return paths


def _build_states() -> dict[str, dict]:
    """role -> state dict: the checkpoint and ControlNet in the original LDM layouts, the LoRA
    in kohya's."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    from .checkpoints import (
        attention_projections,
        controlnet_ldm_state,
        kohya_lora_state,
        sd15_ldm_state,
    )
    from .models import _live_control_path, clip_vit_l_text_encoder, sd15_full_size_vae

    with torch.random.fork_rng(devices=()):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4,
                                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                    **_UNET_SHAPE)
        controlnet = ControlNetModel(in_channels=4, **_UNET_SHAPE)
        _live_control_path(controlnet, "controlnet_cond_embedding")
        vae = sd15_full_size_vae()
        text = clip_vit_l_text_encoder()
    lora = kohya_lora_state(attention_projections({"unet": unet.state_dict()}), seed=5,
                            scale=0.02)
    return {"checkpoint": sd15_ldm_state(unet.state_dict(), vae.state_dict(),
                                         text.state_dict()),
            "controlnet": controlnet_ldm_state(controlnet.state_dict()), "lora": lora}


def _write_atomic(state: dict, path: Path) -> None:
    from safetensors.torch import save

    write_bytes_atomic(path, save(state, metadata={_STAMP: TINY_COMFYUI_VERSION}))


def _stamped(path: Path) -> bool:
    """A complete safetensors file written by this version (its header says so and the file
    is as long as the header's last tensor ends)."""
    try:
        with path.open("rb") as file:
            length = int.from_bytes(file.read(8), "little")
            if not 0 < length < 1 << 24:
                return False
            header = json.loads(file.read(length))
        end = max((entry["data_offsets"][1] for name, entry in header.items()
                   if name != "__metadata__"), default=0)
        return (header.get("__metadata__", {}).get(_STAMP) == TINY_COMFYUI_VERSION
                and path.stat().st_size == 8 + length + end)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
