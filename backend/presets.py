"""Model presets: what the panel lists and what each maps to. Stdlib only (the add-on imports it).

A preset gives a model spec (sent to the backend as the request's `model`) and the family's
recommended settings. `tiny-sd15-depth` is built locally by the backend on first use: random
weights that prove the plumbing, not image quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TINY_SD15_DEPTH = "tiny-sd15-depth"


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    description: str
    family: str
    weights: dict[str, str]  # role -> HF repo id, local folder, or "tiny"
    steps: int
    guidance: float
    control_strength: float
    size_multiple: int
    default_size: int
    extra: dict[str, Any] = field(default_factory=dict)

    def model_spec(self) -> dict[str, Any]:
        return {"preset": self.name, "family": self.family, **self.weights}


PRESETS: tuple[Preset, ...] = (
    Preset(
        name=TINY_SD15_DEPTH,
        label="Tiny SD1.5 Depth (offline test)",
        description="Random weights built locally: checks the set-up, makes noise, not pictures",
        family="sd15_controlnet",
        weights={"base": "tiny", "controlnet": "tiny"},
        steps=4, guidance=7.5, control_strength=1.0, size_multiple=8, default_size=512,
    ),
    Preset(
        name="sd15-depth",
        label="SD 1.5 + Depth ControlNet",
        description="stable-diffusion-v1-5 with lllyasviel's v1.1 depth ControlNet, 512 px",
        family="sd15_controlnet",
        weights={"base": "stable-diffusion-v1-5/stable-diffusion-v1-5",
                 "controlnet": "lllyasviel/control_v11f1p_sd15_depth"},
        steps=25, guidance=7.5, control_strength=1.0, size_multiple=8, default_size=512,
    ),
)

_BY_NAME = {preset.name: preset for preset in PRESETS}


def get_preset(name: str) -> Preset:
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise KeyError(f"unknown preset '{name}' (known: {known})") from None


def snap_size(value: int, multiple: int, minimum: int | None = None) -> int:
    """Round to the nearest multiple the model accepts (never below one multiple)."""
    minimum = multiple if minimum is None else minimum
    return max(minimum, round(value / multiple) * multiple)
