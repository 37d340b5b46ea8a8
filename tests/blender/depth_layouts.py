"""Layouts a new user starts with, built in code for the depth tests (the issue: the default
range failed on all of them). The full realistic scene set is devtools/scenes.py's job."""

from __future__ import annotations

import math

from devtools.scenes import add_box, add_camera, add_plane


def _size(scene, width: int, height: int) -> None:
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.t2i.use_render_size, scene.t2i.width, scene.t2i.height = False, width, height


def street(scene, width=64, height=48):
    """An eye-height camera looking a little down a 4 km floor that runs to the horizon, a post
    1 m ahead and two houses 40 m ahead: the auto range's far/near is in the hundreds."""
    _size(scene, width, height)
    add_camera(scene, location=(0.0, 0.0, 1.6), rotation=(math.radians(86.0), 0.0, 0.0),
               clip_end=5000.0)
    add_plane(scene, size=4000.0, name="Floor")
    add_box(scene, 0.3, (0.25, 1.0, 1.45), name="Post")
    add_box(scene, 8.0, (-7.0, 40.0, 4.0), name="House")
    add_box(scene, 8.0, (7.0, 44.0, 4.0), name="House.001")
    return scene


def wall(scene, size: float, width=64, height=48):
    """A camera 5 m square-on to a wall: every pixel that sees the wall is at 5.0 m. A wall of
    `size` 20 fills the frame; of 2, about half of it."""
    _size(scene, width, height)
    add_camera(scene, location=(0.0, 0.0, 5.0))
    add_plane(scene, size=size, name="Wall")
    return scene


def inside_a_crate(scene, flip=False, ortho=False, width=64, height=48):
    """A camera inside a 1 m crate standing on a floor: it sees only the crate's back faces.
    With `flip` the crate's normals face inward, as a room's do; `ortho`: an orthographic
    camera whose frame (0.5 m wide) lies within the crate."""
    _size(scene, width, height)
    add_camera(scene, location=(2.0, 3.0, 0.5), rotation=(math.radians(70.0), 0.0, 0.4),
               ortho_scale=0.5 if ortho else None)
    crate = add_box(scene, 1.0, (2.1, 3.0, 0.5), name="Crate")
    if flip:
        crate.data.flip_normals()
    add_plane(scene, size=100.0)
    return scene
