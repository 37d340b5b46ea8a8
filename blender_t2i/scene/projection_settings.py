"""Projection settings (`scene.t2i.projection`): how a result is projected from the camera
onto meshes and baked into their UVs."""

from __future__ import annotations

import math

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

SHADINGS = [
    ("EMISSION", "Emission", "Show the picture exactly as generated, unlit (its light is "
                             "already in it)"),
    ("LIT", "Lit", "Use the picture as the base colour of a Principled BSDF lit by the scene"),
]
FILTERS = [
    ("Closest", "Closest", "Pixel-exact from the camera it was generated from, in Cycles and "
                           "EEVEE; blocky when seen up close from elsewhere"),
    ("Linear", "Linear", "Smoother when seen up close from other views (Cycles); EEVEE blurs "
                         "it (its texture filtering of computed coordinates)"),
]
VIEW_SOURCES = [
    ("SELECTED", "Selected Cameras", "Generate from each selected camera, in name order"),
    ("ORBIT", "Orbit", "Make cameras evenly round the selected meshes (collection 'T2I Orbit')"),
]
BAKE_UVS = [
    ("AUTO", "Object's UVs", "Bake into the object's active UV map; a mesh without one gets a "
                             "new, unwrapped UV map"),
    ("NEW", "New UV Map", "Always unwrap a new 'T2I Bake' UV map (for meshes whose own UVs "
                          "overlap or are mirrored)"),
]


class T2IProjectionSettings(bpy.types.PropertyGroup):
    shading: EnumProperty(name="Shading", items=SHADINGS, default="EMISSION")
    texture_filter: EnumProperty(name="Filter", items=FILTERS, default="Closest",
                                 description="How the picture is sampled between its pixels")
    occlusion_tolerance: FloatProperty(
        name="Occlusion Tolerance", default=0.01, min=0.0, max=0.5, subtype="FACTOR",
        description="How much farther than the captured depth a surface may be and still be "
                    "textured, as a fraction of the depth; farther surfaces are hidden from "
                    "the camera and keep their own material")
    fade_start: FloatProperty(
        name="Fade From", default=math.radians(60.0), min=0.0, max=math.radians(90.0),
        subtype="ANGLE",
        description="Surfaces turned further than this from the camera start to fade to "
                    "their own material (the picture stretches on them)")
    fade_end: FloatProperty(
        name="Fade To", default=math.radians(85.0), min=0.0, max=math.radians(90.0),
        subtype="ANGLE", description="Surfaces turned this far from the camera, and back "
                                     "faces, show only their own material")
    use_bake: BoolProperty(
        name="Bake", default=False,
        description="After projecting, bake the projection into each mesh's UVs (Cycles), so "
                    "the texture travels with the mesh and exports with it")
    bake_size: IntProperty(name="Bake Size", default=1024, min=16, max=16384, subtype="PIXEL",
                           description="Width and height of each mesh's baked image")
    bake_uv: EnumProperty(name="Bake UVs", items=BAKE_UVS, default="AUTO")
    views_source: EnumProperty(name="Cameras", items=VIEW_SOURCES, default="ORBIT")
    orbit_count: IntProperty(name="Views", default=4, min=1, max=32,
                             description="How many cameras the orbit has")
    orbit_elevation: FloatProperty(name="Elevation", default=20.0, min=-89.0, max=89.0,
                                   description="Degrees the orbit's cameras look down from")
    bake_margin: IntProperty(name="Margin", default=8, min=0, max=64, subtype="PIXEL",
                             description="Pixels the bake extends past each UV island's edge")


def register() -> None:
    bpy.utils.register_class(T2IProjectionSettings)


def unregister() -> None:
    bpy.utils.unregister_class(T2IProjectionSettings)
