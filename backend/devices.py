"""Device and dtype choice (imports torch: backend process only)."""

from __future__ import annotations

import torch


def available_devices() -> list[str]:
    devices = []
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def pick_device(requested: str = "auto") -> str:
    if requested and requested != "auto":
        return requested
    return available_devices()[0].split(":")[0]


def pick_dtype(device: str, requested: str = "auto",
               half: torch.dtype = torch.float16) -> torch.dtype:
    """fp16/bf16 on accelerators (per family); fp32 on CPU, where half precision is slow."""
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if requested and requested != "auto":
        return names[requested]
    return torch.float32 if device == "cpu" else half


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
