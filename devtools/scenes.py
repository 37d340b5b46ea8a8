"""Scenes built in code for tests, the demo and benchmarks (bpy)."""

from __future__ import annotations

import math

import bpy
import numpy as np


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


def add_tilted_plane(scene, distance: float, tilt_degrees: float, size=200.0, name="Tilted"):
    """A plane through the point `distance` m below a camera at the origin height looking down
    -Z, turned `tilt_degrees` about the X axis (see plane_depth for its exact Z)."""
    plane = add_plane(scene, size=size, name=name)
    plane.rotation_euler = (math.radians(tilt_degrees), 0.0, 0.0)
    plane.location = (0.0, 0.0, -distance)
    return plane


def add_sphere(scene, radius: float, location, name="Sphere", segments=128, rings=64):
    """A UV sphere fine enough that its facets stay within 0.05% of the true radius."""
    verts = [(0.0, 0.0, radius), (0.0, 0.0, -radius)]
    for ring in range(1, rings):
        theta = math.pi * ring / rings
        for seg in range(segments):
            phi = 2 * math.pi * seg / segments
            verts.append((radius * math.sin(theta) * math.cos(phi),
                          radius * math.sin(theta) * math.sin(phi), radius * math.cos(theta)))

    def ring_vert(ring, seg):
        return 2 + (ring - 1) * segments + seg % segments

    faces = [(0, ring_vert(1, s), ring_vert(1, s + 1)) for s in range(segments)]
    faces += [(1, ring_vert(rings - 1, s + 1), ring_vert(rings - 1, s)) for s in range(segments)]
    for ring in range(1, rings - 1):
        faces += [(ring_vert(ring, s), ring_vert(ring + 1, s), ring_vert(ring + 1, s + 1),
                   ring_vert(ring, s + 1)) for s in range(segments)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    sphere = bpy.data.objects.new(name, mesh)
    sphere.location = location
    scene.collection.objects.link(sphere)
    return sphere


# --- analytic truth for the scenes above (camera at (0, 0, h) looking down -Z, no rotation) ---

def camera_rays(scene, width: int, height: int):
    """Per-pixel ray origins and directions in camera space (top row first), from the
    camera's own projection, perspective or orthographic."""
    camera = scene.camera
    depsgraph = bpy.context.evaluated_depsgraph_get()
    projection = np.array(camera.calc_matrix_camera(depsgraph, x=width, y=height))
    inverse = np.linalg.inv(projection)
    xs = (np.arange(width) + 0.5) / width * 2 - 1
    ys = 1 - (np.arange(height) + 0.5) / height * 2
    x, y = np.meshgrid(xs, ys)

    def unproject(z_ndc):
        points = np.stack([x, y, np.full_like(x, z_ndc), np.ones_like(x)], axis=-1) @ inverse.T
        return points[..., :3] / points[..., 3:]

    near, far = unproject(-1.0), unproject(1.0)
    return near, far - near


def plane_depth(scene, width: int, height: int, distance: float, tilt_degrees: float):
    """Planar Z of add_tilted_plane(distance, tilt) seen by a camera at the world origin."""
    origin, direction = camera_rays(scene, width, height)
    cam_z = scene.camera.location.z
    tilt = math.radians(tilt_degrees)
    normal = np.array([0.0, -math.sin(tilt), math.cos(tilt)])
    point = np.array([0.0, 0.0, -distance - cam_z])  # the plane's pivot in camera space
    s = ((point - origin) @ normal) / (direction @ normal)
    return -(origin[..., 2] + s * direction[..., 2])


def sphere_depth(scene, width: int, height: int, centre, radius: float):
    """Planar Z of a sphere (camera space centre) per pixel; NaN where the ray misses."""
    origin, direction = camera_rays(scene, width, height)
    offset = origin - np.asarray(centre, dtype=float)
    a = np.sum(direction * direction, axis=-1)
    b = 2 * np.sum(offset * direction, axis=-1)
    c = np.sum(offset * offset, axis=-1) - radius**2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        s = (-b - np.sqrt(disc)) / (2 * a)
    z = -(origin[..., 2] + s * direction[..., 2])
    return np.where(disc > 0, z, np.nan)
