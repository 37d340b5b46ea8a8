"""Device, dtype and memory modes (imports torch: backend process only).

Memory modes, from fastest to leanest:
  full           every model on the device
  model_offload  whole models move to the device when used (diffusers' model CPU offload)
  group_offload  groups of layers stream to the device as they run (slower, much leaner)
  fp8            weights of the big denoiser stored as float8, computed in the model dtype
                 (layerwise casting): about half the denoiser memory, slightly different output
`auto` picks full when the weights fit with room to spare, else model_offload, else
group_offload. Model offload needs an accelerator; on CPU it runs as full.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from t2i_core.protocol import ErrorCode

from .errors import BackendError

log = logging.getLogger("blender_t2i.backend")

DENOISERS = ("unet", "transformer", "controlnet")
# What to try next after running out of memory in a mode.
NEXT_MODE_HINT = {
    "full": "Pick the 'model_offload' memory mode (or lower the size).",
    "model_offload": "Pick the 'group_offload' or 'fp8' memory mode (or lower the size).",
    "fp8": "Pick the 'group_offload' memory mode (or lower the size).",
    "group_offload": "Lower the size; this model does not fit this machine even streamed.",
}


def available_devices() -> list[str]:
    devices = []
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def pick_device(requested: str = "auto") -> str:
    """`requested` if this machine has it ("cuda" is the first GPU), else a BAD_REQUEST that
    lists what it has: a job for cuda:3 on a two-GPU worker must not fail inside torch."""
    available = available_devices()
    if not requested or requested == "auto":
        return available[0].split(":")[0]
    kinds = {device.split(":")[0] for device in available}
    if requested in available or requested in kinds:
        return requested
    raise BackendError(ErrorCode.BAD_REQUEST, f"device '{requested}' is not on this machine "
                       f"(it has: {', '.join(available)})")


def pick_dtype(device: str, requested: str = "auto",
               half: torch.dtype = torch.float16) -> torch.dtype:
    """The family's half precision (fp16 or bf16) on accelerators; fp32 on CPU, where half
    precision is slow or unsupported."""
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if requested and requested != "auto":
        if requested not in names:
            raise BackendError(ErrorCode.BAD_REQUEST, f"dtype '{requested}' is not one of "
                               f"{', '.join(names)}")
        return names[requested]
    if device == "cpu":
        return torch.float32
    if device == "mps" and half == torch.bfloat16 and not _mps_has_bf16():
        return torch.float16
    return half


def _mps_has_bf16() -> bool:
    try:
        torch.zeros(1, dtype=torch.bfloat16, device="mps")
    except (RuntimeError, TypeError):
        return False
    return True


def weights_bytes(paths: Iterable[Path]) -> int:
    """Rough size of the weights on disk (what full mode needs on the device, plus some)."""
    total = 0
    for path in paths:
        files = [path] if path.is_file() else path.rglob("*.safetensors")
        total += sum(f.stat().st_size for f in files if f.is_file())
    return total


def device_memory(device: str) -> int | None:
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        return torch.cuda.get_device_properties(index).total_memory
    return None


def choose_memory_mode(requested: str, device: str, needed_bytes: Callable[[], int]) -> str:
    """`needed_bytes` is only called for `auto` on a device with its own memory."""
    if device == "cpu":
        if requested == "model_offload":  # diffusers refuses it without an accelerator
            log.info("memory mode model_offload needs an accelerator; running 'full' on cpu")
            return "full"
        return "full" if requested == "auto" else requested
    if requested != "auto":
        return requested
    total = device_memory(device)  # None on mps: unified memory, offloading buys little
    if total is None:
        return "full"
    needed = needed_bytes()
    if needed * 1.25 < total:
        return "full"
    return "model_offload" if needed * 0.6 < total else "group_offload"


def place(pipe: Any, mode: str, device: str, dtype: torch.dtype) -> None:
    """Put a freshly loaded pipeline on the device in the given memory mode."""
    if mode == "fp8":
        for name in DENOISERS:
            model = getattr(pipe, name, None)
            if model is not None and hasattr(model, "enable_layerwise_casting"):
                model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
                                               compute_dtype=dtype)
        pipe.to(device)
    elif mode == "model_offload":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "group_offload":
        pipe.enable_group_offload(onload_device=torch.device(device),
                                  offload_device=torch.device("cpu"),
                                  offload_type="leaf_level", use_stream=device != "cpu")
    else:
        pipe.to(device)


def compile_denoisers(pipe: Any) -> None:
    """torch.compile the UNet/transformer and ControlNet in place (spec `compile: true`): the
    first job at a new size compiles for a while, later ones run faster. UNets also switch to
    channels-last memory, which convolutions prefer on GPUs."""
    for name in DENOISERS:
        model = getattr(pipe, name, None)
        if model is None:
            continue
        if name == "unet" or model.__class__.__name__ == "ControlNetModel":
            model.to(memory_format=torch.channels_last)
        model.compile()


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        torch.mps.empty_cache()


# How torch words the allocators' failures that are not torch.OutOfMemoryError: the CPU
# allocator (Linux/macOS and Windows wordings) and the Metal one raise a plain RuntimeError.
_OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):  # CUDA's is the same class
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(w in text for w in _OUT_OF_MEMORY_WORDS)
