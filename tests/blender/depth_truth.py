"""Judging a depth capture against the truth: a ray cast of the render-evaluated scene for Z,
the final render's alpha for what the render shows at all (leaf cut-outs, holdout)."""

from __future__ import annotations

import glob
import os
import tempfile
from dataclasses import dataclass

import bpy
import numpy as np


@dataclass
class Agreement:
    max_error: float  # relative, over compared pixels
    median_error: float
    compared: int  # pixels that hit something in both, away from silhouettes
    background_mismatches: int  # pixels (away from silhouettes) background in one only

    def __str__(self) -> str:
        return (f"max {self.max_error:.2e} median {self.median_error:.2e} over {self.compared} "
                f"px, {self.background_mismatches} background mismatches")


def smooth_pixels(z: np.ndarray, hit: np.ndarray, tolerance: float = 0.01) -> np.ndarray:
    """Truth pixels whose grid neighbours show the same object (or the same nothing) and lie
    on a locally flat surface (1/z, affine across a plane in screen space, is the mean of
    each opposite pair within `tolerance`): silhouettes and creases are sampled differently
    by each renderer and are left out."""
    inverse = np.where(np.isnan(z), 0.0, 1.0 / np.where(np.isnan(z), 1.0, z))
    padded_hit = np.pad(hit, 1, mode="edge")
    padded_inv = np.pad(inverse, 1, mode="edge")
    rows, cols = z.shape
    keep = np.ones(z.shape, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            keep &= padded_hit[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols] == hit
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = padded_inv[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols]
        b = padded_inv[1 - dy:1 - dy + rows, 1 - dx:1 - dx + cols]
        keep &= np.abs((a + b) / 2 - inverse) <= tolerance * np.maximum(inverse, 1e-12)
    keep[0, :] = keep[-1, :] = keep[:, 0] = keep[:, -1] = False  # edge padding says nothing
    return keep


def agreement(z: np.ndarray, background: np.ndarray, truth_z: np.ndarray,
              truth_background: np.ndarray, judged: np.ndarray) -> Agreement:
    both = judged & ~background & ~truth_background
    error = np.abs(z[both] / truth_z[both] - 1.0)
    return Agreement(max_error=float(error.max()) if error.size else 0.0,
                     median_error=float(np.median(error)) if error.size else 0.0,
                     compared=int(both.sum()),
                     background_mismatches=int((judged & (background != truth_background)).sum()))


def final_alpha(scene: bpy.types.Scene, width: int, height: int, samples: int = 16) -> np.ndarray:
    """Alpha of a final Cycles render (transparent film), top row first. The scene's own
    settings are put back afterwards."""
    render = scene.render
    saved = (render.engine, render.film_transparent, render.resolution_x, render.resolution_y,
             render.resolution_percentage, render.filepath, scene.cycles.samples,
             render.image_settings.file_format, render.image_settings.color_mode)
    with tempfile.TemporaryDirectory(prefix="t2i-final-") as folder:
        try:
            render.engine, render.film_transparent = "CYCLES", True
            render.resolution_x, render.resolution_y = width, height
            render.resolution_percentage, scene.cycles.samples = 100, samples
            if hasattr(render.image_settings, "media_type"):
                render.image_settings.media_type = "IMAGE"
            render.image_settings.file_format = "OPEN_EXR"
            render.image_settings.color_mode = "RGBA"
            render.filepath = os.path.join(folder, "final")
            bpy.ops.render.render(write_still=True)
            path = glob.glob(os.path.join(folder, "final*.exr"))[0]
            image = bpy.data.images.load(path, check_existing=False)
            pixels = np.empty(width * height * 4, dtype=np.float32)
            image.pixels.foreach_get(pixels)
            bpy.data.images.remove(image)
        finally:
            (render.engine, render.film_transparent, render.resolution_x, render.resolution_y,
             render.resolution_percentage, render.filepath, scene.cycles.samples,
             render.image_settings.file_format, render.image_settings.color_mode) = saved
    return pixels.reshape(height, width, 4)[::-1, :, 3]
