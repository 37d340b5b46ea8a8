"""Scenes built in code for tests, the demo and benchmarks (bpy)."""

from __future__ import annotations

import math
from contextlib import contextmanager

import bpy
import numpy as np
from mathutils import Vector


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


# --- realistic scenes (tests and bench/depth_capture.py) ---------------------------------------
# Each builder fills an empty scene, sets a small resolution (these scenes are about geometry)
# and returns the scene. Distances are metres; the camera looks along +Y unless stated.

EYE_HEIGHT = 1.6
_LOOK_ALONG_Y = (math.radians(90.0), 0.0, 0.0)


def _link(scene, obj, collection=None):
    (collection or scene.collection).objects.link(obj)
    return obj


def _mesh_object(scene, name, verts, faces, location=(0.0, 0.0, 0.0), collection=None):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    return _link(scene, obj, collection) if collection is not False else obj


def _cuboid(scene, name, size, location, collection=None):
    """A box of edge lengths `size` (x, y, z) whose base centre sits at `location`."""
    sx, sy, sz = size[0] / 2, size[1] / 2, size[2]
    verts = [(x, y, z) for x in (-sx, sx) for y in (-sy, sy) for z in (0.0, sz)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return _mesh_object(scene, name, verts, faces, location, collection)


def _grid(scene, name, size, cuts, location=(0.0, 0.0, 0.0), collection=None):
    """A flat square grid (cuts x cuts quads) in the XY plane, with a UV map."""
    coords = np.linspace(-size / 2, size / 2, cuts + 1)
    verts = [(float(x), float(y), 0.0) for y in coords for x in coords]
    faces = [(j * (cuts + 1) + i, j * (cuts + 1) + i + 1, (j + 1) * (cuts + 1) + i + 1,
              (j + 1) * (cuts + 1) + i) for j in range(cuts) for i in range(cuts)]
    obj = _mesh_object(scene, name, verts, faces, location, collection)
    obj.data.uv_layers.new(name="UVMap")
    return obj


def _eye_camera(scene, location=(0.0, 0.0, EYE_HEIGHT), pitch_degrees=0.0, lens=24.0,
                clip_end=2000.0):
    camera = add_camera(scene, location=location, clip_end=clip_end)
    camera.rotation_euler = (math.radians(90.0 + pitch_degrees), 0.0, 0.0)
    camera.data.lens = lens
    return camera


def _small_render(scene, width=240, height=160):
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100


def horizon_scene(scene):
    """(a) An eye-height camera over a 10 km floor that runs to the horizon, props from 0.5 m
    to 60 m ahead, and a far wall 80 m away."""
    _small_render(scene)
    _eye_camera(scene, pitch_degrees=-4.0)
    add_plane(scene, size=10000.0, name="Floor")
    props = [  # (name, distance ahead, x, (width, depth, height))
        ("Post 0.5 m", 0.5, -0.28, (0.08, 0.08, 2.2)),
        ("Crate 2 m", 2.0, 0.6, (0.6, 0.6, 0.6)),
        ("Bench 5 m", 5.0, -1.5, (1.8, 0.5, 0.5)),
        ("Column 12 m", 12.0, 2.5, (0.6, 0.6, 4.0)),
        ("Kiosk 25 m", 25.0, -5.0, (3.0, 3.0, 3.0)),
        ("Tower 60 m", 60.0, 12.0, (5.0, 5.0, 20.0)),
    ]
    for name, distance, x, size in props:
        _cuboid(scene, name, size, (x, distance, 0.0))
    add_sphere(scene, 1.0, (1.5, 8.0, 1.0), name="Ball 8 m", segments=48, rings=24)
    _cuboid(scene, "Far wall 80 m", (60.0, 1.0, 6.0), (-8.0, 80.0, 0.0))
    return scene


def interior_scene(scene):
    """(b) A 6 x 8 x 3 m room seen from its doorway: walls, ceiling, a door frame 0.3 m from
    the camera, furniture from 1 m to 7.5 m."""
    _small_render(scene)
    _eye_camera(scene, location=(0.0, -0.3, EYE_HEIGHT), pitch_degrees=-8.0, lens=18.0,
                clip_end=100.0)
    depth, height = 8.0, 3.0
    shell = [  # name, verts (inward-facing quads)
        ("Floor", [(-3, 0, 0), (3, 0, 0), (3, depth, 0), (-3, depth, 0)]),
        ("Ceiling", [(-3, 0, height), (-3, depth, height), (3, depth, height), (3, 0, height)]),
        ("Back wall", [(-3, depth, 0), (3, depth, 0), (3, depth, height), (-3, depth, height)]),
        ("Left wall", [(-3, 0, 0), (-3, depth, 0), (-3, depth, height), (-3, 0, height)]),
        ("Right wall", [(3, depth, 0), (3, 0, 0), (3, 0, height), (3, depth, height)]),
    ]
    for name, verts in shell:
        _mesh_object(scene, name, verts, [(0, 1, 2, 3)])
    _cuboid(scene, "Door frame left", (0.1, 0.1, 2.1), (-0.45, 0.0, 0.0))
    _cuboid(scene, "Door frame right", (0.1, 0.1, 2.1), (0.45, 0.0, 0.0))
    furniture = [
        ("Chair", (0.5, 0.5, 0.9), (0.8, 1.2, 0.0)),
        ("Table", (1.6, 0.9, 0.75), (-0.6, 2.5, 0.0)),
        ("Sofa", (2.2, 0.9, 0.8), (1.6, 5.0, 0.0)),
        ("Shelf", (1.2, 0.4, 2.2), (-2.2, 7.5, 0.0)),
    ]
    for name, size, location in furniture:
        _cuboid(scene, name, size, location)
    add_sphere(scene, 0.25, (-0.6, 2.5, 1.0), name="Lamp shade", segments=32, rings=16)
    return scene


def _hidden_collection(name):
    """A collection not linked to any scene: the source of instances."""
    return bpy.data.collections.new(name)


def lamp_instancer_group(lamp) -> bpy.types.NodeTree:
    """Geometry Nodes: one instance of `lamp` on every vertex of the modified mesh."""
    group = bpy.data.node_groups.new("Lamp instancer", "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes = group.nodes
    inputs, outputs = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    info = nodes.new("GeometryNodeObjectInfo")
    info.inputs["Object"].default_value = lamp
    info.inputs["As Instance"].default_value = True
    instance = nodes.new("GeometryNodeInstanceOnPoints")
    group.links.new(inputs.outputs[0], instance.inputs["Points"])
    group.links.new(info.outputs["Geometry"], instance.inputs["Instance"])
    group.links.new(instance.outputs["Instances"], outputs.inputs[0])
    return group


def street_scene(scene, houses_per_side=300, lamps_per_side=250):
    """(c) A 1.2 km street at eye height: 2 x houses_per_side collection instances of a house
    (body and roof) and 2 x lamps_per_side lamp posts from a Geometry Nodes instancer on a
    point mesh; 1,100 instanced objects at the defaults."""
    _small_render(scene)
    _eye_camera(scene, location=(0.0, -5.0, EYE_HEIGHT), pitch_degrees=-2.0, lens=28.0)
    add_plane(scene, size=3000.0, name="Ground")
    house = _hidden_collection("House")
    _cuboid(scene, "House body", (6.0, 3.5, 5.0), (0.0, 0.0, 0.0), collection=house)
    roof_verts = [(-3.2, -1.9, 5.0), (3.2, -1.9, 5.0), (3.2, 1.9, 5.0), (-3.2, 1.9, 5.0),
                  (-3.2, 0.0, 7.0), (3.2, 0.0, 7.0)]
    roof_faces = [(0, 1, 5, 4), (3, 4, 5, 2), (0, 4, 3), (1, 2, 5), (0, 3, 2, 1)]
    _mesh_object(scene, "House roof", roof_verts, roof_faces, collection=house)
    spacing = 4.0
    for side in (-1, 1):
        for i in range(houses_per_side):
            empty = bpy.data.objects.new(f"House {side:+d} {i:03d}", None)
            empty.instance_type = "COLLECTION"
            empty.instance_collection = house
            empty.location = (side * (9.0 + (i % 3) * 0.7), i * spacing, 0.0)
            empty.rotation_euler = (0.0, 0.0, math.radians(90.0))
            _link(scene, empty)
    lamp = _cuboid(scene, "Lamp post", (0.15, 0.15, 4.0), (0.0, 0.0, 0.0), collection=False)
    points = [(side * 5.0, 2.0 + i * 4.8, 0.0) for side in (-1, 1) for i in range(lamps_per_side)]
    row = _mesh_object(scene, "Lamp row", points, [])
    row.modifiers.new("Lamps", "NODES").node_group = lamp_instancer_group(lamp)
    return scene


def leaf_image(size=128, name="Leaves") -> bpy.types.Image:
    """An RGBA texture as a tree asset ships one: green leaves (alpha 1) on alpha 0, packed."""
    image = bpy.data.images.new(name, size, size, alpha=True)
    rng = np.random.default_rng(7)
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    alpha = np.zeros((size, size), np.float32)
    for cx, cy, r in zip(rng.uniform(0.1, 0.9, 40), rng.uniform(0.1, 0.9, 40),
                         rng.uniform(0.03, 0.08, 40), strict=True):
        alpha[(xx - cx) ** 2 + ((yy - cy) * 1.8) ** 2 < r * r] = 1.0  # elliptic leaves
    pixels = np.zeros((size, size, 4), np.float32)
    pixels[..., 1], pixels[..., 0], pixels[..., 3] = 0.45, 0.12, alpha
    image.pixels.foreach_set(pixels.ravel())
    image.pack()
    return image


def leaf_material(name="Leaf card") -> bpy.types.Material:
    """Principled BSDF whose Base Color and Alpha come from leaf_image (linear filtering)."""
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # 4.x: nodes are off by default
        material.use_nodes = True
    tree = material.node_tree
    bsdf = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.image = leaf_image()
    tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    tree.links.new(texture.outputs["Alpha"], bsdf.inputs["Alpha"])
    if hasattr(material, "blend_method"):
        material.blend_method = "CLIP"  # how assets made for EEVEE Legacy / Workbench ship
    return material


def foliage_scene(scene, trees=5):
    """(d) Trees as assets ship them: a trunk and a crown of three crossed cards (planes with
    an alpha-cut leaf texture), seen from eye height against the sky over a ground plane."""
    _small_render(scene)
    _eye_camera(scene, location=(0.0, -2.0, 1.2), pitch_degrees=12.0, lens=28.0,
                clip_end=500.0)
    add_plane(scene, size=1000.0, name="Ground")
    material = leaf_material()
    for t in range(trees):
        x, y = (t - (trees - 1) / 2) * 3.2, 8.0 + 2.5 * (t % 2)
        _cuboid(scene, f"Trunk {t}", (0.25, 0.25, 2.5), (x, y, 0.0))
        for c in range(3):
            card = _grid(scene, f"Leaf card {t}.{c}", 3.0, 1, location=(x, y, 3.6))
            card.rotation_euler = (math.radians(90.0), 0.0, math.radians(60.0 * c))
            card.data.materials.append(material)
    return scene


def render_time_scene(scene):
    """(e) What only the render shows or hides: a cube that subdivides into a ball at render
    time (viewport level 0), a displaced grid, an array of crates, an object hidden from
    render, one invisible to camera rays, and a holdout collection, in front of a backdrop."""
    _small_render(scene)
    add_camera(scene, location=(0.0, -12.0, 2.0), clip_end=100.0)
    scene.camera.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    _cuboid(scene, "Backdrop", (30.0, 1.0, 12.0), (0.0, 6.0, -2.0))
    add_plane(scene, size=200.0, name="Ground")
    blob = add_box(scene, 2.0, (-3.0, 0.0, 2.5), name="Subdivided cube")
    subdivision = blob.modifiers.new("Subdivision", "SUBSURF")
    subdivision.levels, subdivision.render_levels = 0, 3
    wave = _grid(scene, "Displaced grid", 4.0, 48, location=(2.5, 1.0, 2.0))
    wave.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    texture = bpy.data.textures.new("Ripples", "WOOD")
    texture.wood_type, texture.noise_basis_2 = "RINGS", "SIN"
    displace = wave.modifiers.new("Displace", "DISPLACE")
    displace.texture, displace.strength, displace.mid_level = texture, 0.8, 0.5
    displace.show_viewport = False  # render-time only
    crate = _cuboid(scene, "Crate array", (0.8, 0.8, 0.8), (-5.0, -2.0, 0.0))
    array = crate.modifiers.new("Array", "ARRAY")
    array.count, array.relative_offset_displace = 6, (1.6, 0.0, 0.0)
    array.show_viewport = False
    hidden = add_box(scene, 1.5, (0.0, -4.0, 2.0), name="Hidden from render")
    hidden.hide_render = True
    ghost = add_box(scene, 1.5, (2.5, -4.0, 3.5), name="Invisible to camera")
    ghost.visible_camera = False
    holdout = bpy.data.collections.new("Holdout")
    scene.collection.children.link(holdout)
    _cuboid(scene, "Holdout pillar", (1.2, 1.2, 4.0), (-0.5, -1.0, 0.0), collection=holdout)
    bpy.context.view_layer.layer_collection.children[holdout.name].holdout = True
    return scene


def dolly_scene(scene, frames=24, travel=20.0):
    """(f) horizon_scene with the camera dollying `travel` m forward over `frames` frames."""
    horizon_scene(scene)
    camera = scene.camera
    scene.frame_start, scene.frame_end = 1, frames
    start = camera.location.copy()
    for frame, y in ((1, start.y), (frames, start.y + travel)):
        camera.location.y = y
        camera.keyframe_insert("location", index=1, frame=frame)
    camera.location = start
    scene.frame_set(1)
    return scene


def heavy_scene(scene, triangles=2_000_000):
    """About `triangles` triangles as linked duplicates of one 131k-triangle mesh (a dense
    sphere), in rows on a floor: heavy for rasterisers, light for Cycles' instanced BVH."""
    _small_render(scene, 512, 512)
    _eye_camera(scene, location=(0.0, -20.0, 8.0), pitch_degrees=-20.0, lens=35.0,
                clip_end=500.0)
    add_plane(scene, size=400.0, name="Floor")
    source = add_sphere(scene, 1.5, (0.0, 0.0, 1.5), name="Dense sphere", segments=512,
                        rings=128)
    per_mesh = len(source.data.loops) - 2 * len(source.data.polygons)
    for i in range(1, max(1, round(triangles / per_mesh))):
        duplicate = bpy.data.objects.new(f"Dense sphere {i:03d}", source.data)
        duplicate.location = ((i % 6) * 4.0 - 10.0, (i // 6) * 4.0, 1.5)
        _link(scene, duplicate)
    return scene


REALISTIC_SCENES = {"horizon": horizon_scene, "interior": interior_scene,
                    "street": street_scene, "foliage": foliage_scene,
                    "render_time": render_time_scene, "dolly": dolly_scene}


# --- ground truth: a ray cast of the scene as the render evaluates it --------------------------

@contextmanager
def render_settings_in_viewport(scene):
    """The viewport depsgraph evaluated the way the final render is: objects hidden from
    render or from camera rays hidden, modifiers at their render visibility and levels.
    Everything is put back afterwards."""
    undo = []

    def put(owner, attr, value):
        old = getattr(owner, attr)
        if old != value:
            undo.append((owner, attr, old))
            setattr(owner, attr, value)

    for obj in scene.objects:
        put(obj, "hide_viewport", obj.hide_render or not obj.visible_camera)
        for modifier in obj.modifiers:
            put(modifier, "show_viewport", modifier.show_render)
            if modifier.type in ("SUBSURF", "MULTIRES"):
                put(modifier, "levels", modifier.render_levels)
    try:
        yield bpy.context.evaluated_depsgraph_get()
    finally:
        for owner, attr, old in reversed(undo):
            setattr(owner, attr, old)
        bpy.context.evaluated_depsgraph_get()


def holdout_objects(view_layer) -> set[str]:
    """Names of the objects in holdout collections of `view_layer` (recursively)."""
    names: set[str] = set()

    def walk(layer_collection, held):
        held = held or layer_collection.holdout
        if held:
            names.update(obj.name for obj in layer_collection.collection.objects)
        for child in layer_collection.children:
            walk(child, held)

    walk(view_layer.layer_collection, False)
    return names


def raycast_depth(scene, width: int, height: int, step: int = 1, skip=frozenset(),
                  passed=None):
    """Planar Z per pixel centre from `scene.ray_cast` on the render-evaluated scene, on every
    `step`-th row and column (top row first). Returns (z, hit): z is NaN where the ray misses
    or the hit lies outside the camera's clip range; hit names the object hit ('' for none).
    Rays pass through objects named in `skip` (to see what lies behind leaf cards); the planar
    Z of each such surface passed is appended to `passed[(row, col)]` when it is a dict."""
    camera = scene.camera
    origin, direction = camera_rays(scene, width, height)
    origin, direction = origin[::step, ::step], direction[::step, ::step]
    clip_start, clip_end = camera.data.clip_start, camera.data.clip_end
    z = np.full(origin.shape[:2], np.nan)
    hit = np.full(origin.shape[:2], "", dtype=object)
    with render_settings_in_viewport(scene) as depsgraph:
        to_world = np.array(camera.matrix_world)
        rotation, translation = to_world[:3, :3], to_world[:3, 3]
        world_origin = origin @ rotation.T + translation
        length = np.linalg.norm(direction, axis=-1, keepdims=True)
        world_direction = (direction / length) @ rotation.T
        view_axis = -rotation[:, 2]  # the camera looks down its local -Z
        for row in range(z.shape[0]):
            for col in range(z.shape[1]):
                start, ray = Vector(world_origin[row, col]), Vector(world_direction[row, col])
                while True:
                    found, location, _normal, _index, obj, _matrix = scene.ray_cast(
                        depsgraph, start, ray)
                    if not found or obj is None or obj.original.name not in skip:
                        break
                    if passed is not None:
                        passed.setdefault((row, col), []).append(
                            float(np.dot(np.array(location) - translation, view_axis)))
                    start = location + ray * 1e-4
                if not found:
                    continue
                planar = float(np.dot(np.array(location) - translation, view_axis))
                if clip_start <= planar <= clip_end:
                    z[row, col] = planar
                    hit[row, col] = obj.original.name if obj is not None else ""
    return z, hit


# --- motion vectors -------------------------------------------------------------------------

MOTION_BOX_SIZE = 1.6
MOTION_PLANE_SIZE = 400.0


def _noise_material(name: str, scale: float, coordinates: str, colour_scale=(1.0, 1.0, 1.0)):
    """A noise texture (in `coordinates`) as emission: smooth at a few pixels, never flat."""
    material = bpy.data.materials.new(name)
    if material.node_tree is None:
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    _noise_emission(tree, "ShaderNodeOutputMaterial", scale, coordinates, colour_scale)
    return material


def _noise_emission(tree, output_kind, scale, coordinates, colour_scale,
                    shader="ShaderNodeEmission"):
    output = tree.nodes.new(output_kind)
    emission = tree.nodes.new(shader)
    coords = tree.nodes.new("ShaderNodeTexCoord")
    noise = tree.nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = scale
    noise.inputs["Detail"].default_value = 1.0
    tint = tree.nodes.new("ShaderNodeMix")
    tint.data_type = "RGBA"
    tint.blend_type = "MULTIPLY"
    tint.inputs["Factor"].default_value = 1.0
    tint.inputs[7].default_value = (*colour_scale, 1.0)  # B (colour)
    tree.links.new(coords.outputs[coordinates], noise.inputs["Vector"])
    tree.links.new(noise.outputs["Color"], tint.inputs[6])  # A (colour)
    tree.links.new(tint.outputs[2], emission.inputs["Color"])
    tree.links.new(emission.outputs[0], output.inputs["Surface"])


def _give(obj, material):
    obj.data.materials.clear()
    obj.data.materials.append(material)


def motion_shot(scene, frames=range(1, 7)):
    """A shot for motion vectors: a camera that moves and pans (linear keys) over a 400 m
    noise-textured ground, a cube of MOTION_BOX_SIZE moving and turning, a noise-textured
    world above the horizon. Every material is emission, and the render is Cycles at one
    sample with a tiny box filter: each pixel is its centre's texture colour. Returns
    (camera, box, plane)."""
    plane = add_plane(scene, size=MOTION_PLANE_SIZE)
    _give(plane, _noise_material("Ground", 0.6, "Object", (1.0, 0.8, 0.6)))
    box = add_box(scene, MOTION_BOX_SIZE, (0.0, 0.0, 1.0))
    _give(box, _noise_material("Box", 2.0, "Object", (0.5, 0.8, 1.0)))
    world = bpy.data.worlds.new("Sky")
    if world.node_tree is None:
        world.use_nodes = True
    world.node_tree.nodes.clear()
    _noise_emission(world.node_tree, "ShaderNodeOutputWorld", 4.0, "Generated",
                    (0.7, 0.9, 1.0), shader="ShaderNodeBackground")
    world.cycles.sampling_method = "NONE"  # its importance map costs ~10 s a colour render
    scene.world = world
    camera = add_camera(scene, clip_end=1000.0)
    camera.data.lens = 30.0
    for frame in frames:
        t = frame - 1
        camera.location = (-0.5 + 0.2 * t, -9.0 + 0.25 * t, 2.2 + 0.05 * t)
        camera.rotation_euler = (math.radians(80.0 - 0.6 * t), 0.0, math.radians(-4.0 + 2.0 * t))
        camera.keyframe_insert("location", frame=frame)
        camera.keyframe_insert("rotation_euler", frame=frame)
        box.location = (-1.8 + 0.6 * t, 0.2 * t, 1.0 + 0.1 * t)
        box.rotation_euler = (math.radians(5.0 * t), 0.0, math.radians(12.0 * t))
        box.keyframe_insert("location", frame=frame)
        box.keyframe_insert("rotation_euler", frame=frame)
    for obj in (camera, box):
        for curve in _fcurves(obj):
            for point in curve.keyframe_points:
                point.interpolation = "LINEAR"
    scene.frame_start, scene.frame_end = frames[0], frames[-1]
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.samples, cycles.use_denoising, cycles.use_adaptive_sampling = 1, False, False
    cycles.pixel_filter_type, cycles.filter_width, cycles.max_bounces = "BOX", 0.01, 0
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.dither_intensity = 0.0
    return camera, box, plane


def _fcurves(obj):
    action = obj.animation_data.action
    if hasattr(action, "fcurves"):
        return action.fcurves
    # 5.x layered actions: the curves live in the action's channelbag for the object's slot
    from bpy_extras import anim_utils

    slot = obj.animation_data.action_slot
    return anim_utils.action_get_channelbag_for_slot(action, slot).fcurves
