"""The `capabilities` reply: families, presets, devices, memory modes, schedulers, which presets'
weights are on this machine (so the panel can mark what will run offline), and which optional
packages the backend runs without and what that costs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from t2i_core import protocol
from t2i_core.presets import FAMILY_INFO, PRESETS, TINY, Preset

from . import families, weights
from .devices import available_devices
from .families.common import unavailable_packages


def preset_present(preset: Preset) -> dict[str, bool]:
    """role -> whether its weights are local (tiny models are always: they are built)."""
    return {role: reference == TINY or weights.locate(reference) is not None
            for role, reference in preset.weights.items()}


def capabilities_event() -> dict[str, Any]:
    presets = []
    for preset in PRESETS:
        present = preset_present(preset)
        presets.append({
            "name": preset.name, "label": preset.label, "description": preset.description,
            "family": preset.family, "model": preset.model_spec(), "steps": preset.steps,
            "guidance": preset.guidance, "control_strength": preset.control_strength,
            "size_multiple": preset.size_multiple, "default_size": preset.default_size,
            "present": all(present.values()), "weights_present": present,
        })
    return {
        "type": protocol.CAPABILITIES,
        "families": [asdict(FAMILY_INFO[name]) for name in families.FAMILIES],
        "presets": presets,
        "devices": available_devices(),
        "memory_modes": list(protocol.MEMORY_MODES),
        "schedulers": list(protocol.SCHEDULERS),
        "unavailable": unavailable_packages(),
    }
