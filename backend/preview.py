"""Step previews: a cheap picture of the latents after each step.

Each loaded pipeline gets a linear map from its latent channels to RGB, fitted once by least
squares against a few small VAE decodes of random latents: no per-model constants to copy, and it
works for any family whose latents the family module can lay out as a grid. Where a TAESD for the
family is in the local HF cache, previews use it instead (sharper, still fast).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from PIL import Image

log = logging.getLogger("blender_t2i.backend")

_FIT_SAMPLES = 3
_FIT_GRID = 16


class LinearPreview:
    """RGB = [channels, 1] @ weights, weights fitted per model."""

    def __init__(self, weights: torch.Tensor):
        self.weights = weights  # (channels + 1, 3), float32
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def rgb(self, grid: torch.Tensor) -> torch.Tensor:
        """(C, h, w) -> (3, h, w) in [-1, 1], computed where the latents are."""
        if grid.device not in self._on:
            weights = self.weights.to(grid.device)
            self._on[grid.device] = (weights[:-1].T.contiguous(), weights[-1].view(3, 1, 1))
        matrix, offset = self._on[grid.device]
        return torch.einsum("oc,chw->ohw", matrix, grid.float()) + offset


class TaesdPreview:
    """A tiny autoencoder's decoder, fed exactly what the pipeline's own final decode would
    give it had TAESD been swapped in as the VAE: FLUX's packed 2x2 patch grid unpacked
    (pixel shuffle: patch channel c*4 + dy*2 + dx goes to pixel (2y + dy, 2x + dx)), then
    `latents / scaling_factor + shift_factor`."""

    def __init__(self, decoder: Any):
        self.decoder = decoder

    def rgb(self, grid: torch.Tensor) -> torch.Tensor:
        decoder = self.decoder
        config = decoder.config
        param = next(decoder.parameters())
        latents = grid[None].to(param.device, param.dtype)
        if latents.shape[1] == 4 * config.latent_channels:
            latents = torch.nn.functional.pixel_shuffle(latents, 2)
        latents = latents / config.scaling_factor + config.shift_factor
        with torch.no_grad():
            return decoder.decode(latents, return_dict=False)[0][0].float()


@torch.no_grad()
def fit_linear(family: Any, pipe: Any, channels: int) -> LinearPreview:
    """Least squares from random latents to their decodes, pooled to the latent grid."""
    generator = torch.Generator("cpu").manual_seed(0)
    grid = torch.randn(_FIT_SAMPLES, channels, _FIT_GRID, _FIT_GRID, generator=generator)
    images = family.decode_grid(pipe, grid).float().cpu()
    pooled = torch.nn.functional.adaptive_avg_pool2d(images, (_FIT_GRID, _FIT_GRID))
    x = grid.permute(0, 2, 3, 1).reshape(-1, channels)
    x = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
    y = pooled.permute(0, 2, 3, 1).reshape(-1, 3)
    # A little ridge keeps wide latents (64-128 channels) well posed with few samples.
    gram = x.T @ x + 1e-3 * torch.eye(x.shape[1])
    return LinearPreview(torch.linalg.solve(gram, x.T @ y))


def load_taesd(repo: str, device: str, dtype: torch.dtype) -> TaesdPreview | None:
    """A TAESD decoder from the local HF cache, or None (never downloads)."""
    from diffusers import AutoencoderTiny
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo, local_files_only=True)
    except LocalEntryNotFoundError:
        return None
    decoder = AutoencoderTiny.from_pretrained(folder, dtype=dtype, use_safetensors=True)
    return TaesdPreview(decoder.to(device))


def to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """(3, h, w) in [-1, 1] -> (h, w, 3) uint8, on the same device (small to copy)."""
    return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)


def to_image(array: torch.Tensor, max_size: int) -> Image.Image:
    """(h, w, 3) uint8 on the CPU -> a PIL image whose longest side is about max_size."""
    array = array.numpy()
    image = Image.fromarray(np.ascontiguousarray(array), "RGB")
    scale = max_size / max(image.size)
    if scale < 1 or scale >= 2:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return image
