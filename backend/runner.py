"""Runs one generate job: resolve and load (or reuse) the pipeline, run it, write the result.

Lives in the backend process only (imports torch through the families).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from . import families, weights
from .devices import is_out_of_memory, pick_device, pick_dtype
from .errors import BackendError, JobCancelled, ModelNotFound
from .presets import TINY_SD15_DEPTH
from .protocol import ErrorCode, GenerateRequest
from .tiny_models import ensure_tiny_sd15_depth

log = logging.getLogger("blender_t2i.backend")


@dataclass
class JobResult:
    paths: list[str]
    timings: dict[str, float] = field(default_factory=dict)


class Runner:
    """Holds one loaded pipeline and reuses it while the model spec stays the same."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir
        self._key: tuple | None = None
        self._pipe: Any = None

    def unload(self) -> None:
        self._pipe = None
        self._key = None
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def generate(self, request: GenerateRequest,
                 on_step: Callable[[int, int], None]) -> JobResult:
        family, folders, device, dtype = self._resolve(request.model)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        pipe = self._load(family, folders, device, dtype)
        timings["load"] = round(time.perf_counter() - started, 4)
        control = _read_rgb(request.control_image, "control image")
        control = control.resize((request.width, request.height), Image.Resampling.BILINEAR) \
            if control.size != (request.width, request.height) else control
        started = time.perf_counter()
        try:
            image = family.generate(pipe, request, control, on_step)
        except JobCancelled:
            raise
        except Exception as exc:
            if is_out_of_memory(exc):
                raise BackendError(ErrorCode.OUT_OF_MEMORY,
                                   f"out of memory at {request.width}x{request.height}") from exc
            raise
        timings["generate"] = round(time.perf_counter() - started, 4)
        path = Path(request.output_dir) / f"{request.id}.png"
        write_png_atomic(image, path, _png_parameters(request))
        return JobResult(paths=[str(path)], timings=timings)

    def _resolve(self, spec: dict[str, Any]) -> tuple[Any, dict[str, Path], str, Any]:
        family_name = spec.get("family")
        family = families.FAMILIES.get(family_name) if isinstance(family_name, str) else None
        if family is None:
            raise BackendError(ErrorCode.BAD_REQUEST,
                               f"unknown model family '{family_name}' "
                               f"(known: {', '.join(sorted(families.FAMILIES))})")
        folders: dict[str, Path] = {}
        if spec.get("preset") == TINY_SD15_DEPTH:
            tiny = ensure_tiny_sd15_depth(self.cache_dir)
            folders = {"base": tiny / "base", "controlnet": tiny / "controlnet"}
        else:
            for role in family.WEIGHT_ROLES:
                reference = spec.get(role)
                if not isinstance(reference, str) or not reference:
                    raise ModelNotFound(f"the model spec names no '{role}' for {family_name}")
                folders[role] = weights.resolve(reference, role)
        device = pick_device(spec.get("device", "auto"))
        dtype = pick_dtype(device, spec.get("dtype", "auto"))
        return family, folders, device, dtype

    def _load(self, family: Any, folders: dict[str, Path], device: str, dtype: Any) -> Any:
        key = (family.NAME, tuple(sorted((k, str(v)) for k, v in folders.items())), device,
               str(dtype))
        if key == self._key:
            return self._pipe
        self.unload()  # free the old model before loading the next one
        log.info("loading %s from %s on %s (%s)", family.NAME, folders, device, dtype)
        try:
            self._pipe = family.load(folders, device, dtype)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise BackendError(ErrorCode.OUT_OF_MEMORY, "out of memory loading the model") \
                    from exc
            raise BackendError(ErrorCode.MODEL_LOAD_FAILED,
                               f"could not load {family.NAME} from "
                               f"{', '.join(str(p) for p in folders.values())}: {exc}") from exc
        self._key = key
        return self._pipe


def _read_rgb(path: str, what: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise BackendError(ErrorCode.INPUT_NOT_FOUND, f"{what} '{path}' does not exist") from None
    except OSError as exc:
        raise BackendError(ErrorCode.BAD_REQUEST, f"{what} '{path}' is unreadable: {exc}") \
            from None


def _png_parameters(request: GenerateRequest) -> dict[str, str]:
    text = {
        "t2i:prompt": request.prompt,
        "t2i:negative_prompt": request.negative_prompt,
        "t2i:seed": str(request.seed),
        "t2i:steps": str(request.steps),
        "t2i:guidance": str(request.guidance),
        "t2i:control_strength": str(request.control_strength),
        "t2i:size": f"{request.width}x{request.height}",
        "t2i:model": str(request.model.get("preset") or request.model),
    }
    text.update(request.metadata or {})
    return text


def write_png_atomic(image: Image.Image, path: Path, text: dict[str, str]) -> None:
    """Write next to the target and rename, so readers never see a half-written file."""
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format="PNG", pnginfo=info)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
