"""Depth settings (`scene.t2i.depth`): how depth is captured, encoded and ranged."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

from ...t2i_core.depth_encoding import DEFAULT_MAX_SIDE

CAPTURE_PATHS = [
    ("AUTO", "Auto", "The fastest exact path: Z pass through the compositor, rendered by "
                     "Workbench"),
    ("COMPOSITOR", "Compositor", "Render the Z pass and read it through the compositor"),
    ("SHADER", "Shader", "Render a depth material (Camera Data View Z Depth) with Cycles or "
                         "EEVEE"),
    ("VIEWPORT", "Viewport", "Render the active 3D View (also non-camera views); needs the "
                             "Blender window"),
]
CAPTURE_ENGINES = [
    ("AUTO", "Auto", "Workbench for the compositor path, Cycles for the shader path"),
    ("WORKBENCH", "Workbench", "Fastest; compositor path only"),
    ("CYCLES", "Cycles", "One sample, no bounces"),
    ("EEVEE", "EEVEE", "One sample; slow to start (shader compilation)"),
]
ENCODINGS = [
    ("INVERSE", "Inverse", "Inverse depth, near = white: what depth ControlNets were trained on "
                           "(MiDaS / Depth-Anything)"),
    ("LINEAR", "Linear", "Linear in metres between near and far, near = white"),
]
RANGE_POLICIES = [
    ("AUTO", "Auto", "Robust percentiles of what the camera sees, per frame"),
    ("CLIP", "Camera Clip", "The camera's clip start and end"),
    ("MANUAL", "Manual", "Near and far set here"),
    ("LOCKED", "Locked", "One range computed over a frame range, used by every frame so an "
                         "animation does not flicker"),
]


class T2IDepthSettings(bpy.types.PropertyGroup):
    capture_path: EnumProperty(name="Capture", items=CAPTURE_PATHS, default="AUTO")
    capture_engine: EnumProperty(name="Engine", items=CAPTURE_ENGINES, default="AUTO")
    encoding: EnumProperty(name="Encoding", items=ENCODINGS, default="INVERSE")
    range_policy: EnumProperty(name="Range", items=RANGE_POLICIES, default="AUTO")
    near: FloatProperty(name="Near", default=1.0, min=1e-4, unit="LENGTH",
                        description="Manual range: this distance and nearer is white")
    far: FloatProperty(name="Far", default=20.0, min=1e-4, unit="LENGTH",
                       description="Manual range: this distance and beyond is black")
    locked_near: FloatProperty(name="Locked Near", default=0.0, min=0.0, unit="LENGTH",
                               description="Set by Lock Depth Range")
    locked_far: FloatProperty(name="Locked Far", default=0.0, min=0.0, unit="LENGTH",
                              description="Set by Lock Depth Range")
    use_scene_frame_range: BoolProperty(
        name="Scene Frame Range", default=True,
        description="Lock the range over the scene's frame range")
    frame_start: IntProperty(name="Start", default=1, description="First frame to lock over")
    frame_end: IntProperty(name="End", default=250, description="Last frame to lock over")
    frame_step: IntProperty(name="Step", default=1, min=1,
                            description="Sample every n-th frame when locking the range")
    max_side: IntProperty(name="Max Size", default=DEFAULT_MAX_SIDE, min=16, max=65536,
                          subtype="PIXEL",
                          description="Refuse depth captures larger than this per side "
                                      "(memory and time grow with the square)")

    def locked_range(self) -> tuple[float, float] | None:
        if 0.0 < self.locked_near < self.locked_far:
            return self.locked_near, self.locked_far
        return None

    def lock_frames(self, scene: bpy.types.Scene) -> range:
        if self.use_scene_frame_range:
            start, end = scene.frame_start, scene.frame_end
        else:
            start, end = self.frame_start, self.frame_end
        return range(start, max(start, end) + 1, max(1, self.frame_step))


def register() -> None:
    bpy.utils.register_class(T2IDepthSettings)


def unregister() -> None:
    bpy.utils.unregister_class(T2IDepthSettings)
