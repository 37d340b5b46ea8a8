"""Scenes built in code for tests, the demo and benchmarks (bpy)."""

from __future__ import annotations

import bpy


def add_camera(scene, location=(0.0, 0.0, 10.0), rotation=(0.0, 0.0, 0.0), ortho_scale=None,
               clip_end=100.0):
    data = bpy.data.cameras.new("Camera")
    data.clip_end = clip_end
    if ortho_scale is not None:
        data.type = "ORTHO"
        data.ortho_scale = ortho_scale
    camera = bpy.data.objects.new("Camera", data)
    camera.location = location
    camera.rotation_euler = rotation
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera


def add_plane(scene, size=100.0, location=(0.0, 0.0, 0.0), name="Plane"):
    mesh = bpy.data.meshes.new(name)
    half = size / 2
    mesh.from_pydata([(-half, -half, 0), (half, -half, 0), (half, half, 0), (-half, half, 0)],
                     [], [(0, 1, 2, 3)])
    plane = bpy.data.objects.new(name, mesh)
    plane.location = location
    scene.collection.objects.link(plane)
    return plane


def add_box(scene, size: float, location, name="Box"):
    """An axis-aligned cube of edge `size` centred at `location`."""
    h = size / 2
    verts = [(x, y, z) for x in (-h, h) for y in (-h, h) for z in (-h, h)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    box = bpy.data.objects.new(name, mesh)
    box.location = location
    scene.collection.objects.link(box)
    return box


def demo_scene(scene):
    """A camera looking down -Z at a floor 10 m away and three boxes whose tops are 4, 6 and
    8 m from the camera plane."""
    scene.render.resolution_x, scene.render.resolution_y = 512, 384
    add_camera(scene, location=(0.0, 0.0, 10.0), clip_end=50.0)
    add_plane(scene, size=40.0, name="Floor")
    for name, size, top, x, y in (("Near", 1.0, 6.0, -0.9, 0.3), ("Middle", 1.6, 4.0, 0.7, 0.6),
                                  ("Far", 2.4, 2.0, 1.6, -1.2)):
        add_box(scene, size, (x, y, top - size / 2), name=name)
    return scene
