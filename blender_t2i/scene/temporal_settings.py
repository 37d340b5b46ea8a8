"""Temporal settings (`scene.t2i.temporal`): how an animation generate carries each frame into
the next (docs/temporal.md)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty

from ...t2i_core.temporal_frame import TemporalOptions

_DEFAULTS = TemporalOptions()


class T2ITemporalSettings(bpy.types.PropertyGroup):
    enabled: BoolProperty(
        name="Temporal", default=True,
        description="Carry each generated frame into the next along the scene's motion "
                    "vectors (steadier animation); off: every frame is generated on its own")
    carry: FloatProperty(
        name="Carry", default=_DEFAULTS.carry, min=0.0, max=1.0, subtype="FACTOR",
        description="How strongly a frame carries into the next where it is still visible: "
                    "1 keeps those pixels exactly, 0 regenerates them every frame")
    keyframe_every: IntProperty(
        name="Keyframe Every", default=_DEFAULTS.keyframe_every, min=0, soft_max=100,
        description="Generate a fresh frame every this many frames (0: only the first)")
    mask_dilate: IntProperty(
        name="Mask Dilation", default=_DEFAULTS.mask_dilate, min=0, max=64, subtype="PIXEL",
        description="Pixels the occluded/newly revealed area grows by before it is "
                    "regenerated (hides seams at silhouettes)")

    def options(self) -> TemporalOptions:
        return TemporalOptions(carry=self.carry, keyframe_every=self.keyframe_every,
                               mask_dilate=self.mask_dilate)


def register() -> None:
    bpy.utils.register_class(T2ITemporalSettings)


def unregister() -> None:
    bpy.utils.unregister_class(T2ITemporalSettings)
