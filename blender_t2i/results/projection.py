"""Project a result from the camera onto meshes, per pixel, over the meshes' own materials;
bake the projection into their UVs.

The projection is a shader node group with the camera's view written into it as numbers
(t2i_core.projection.CameraView): every shaded point's world position goes through the
camera's world -> clip matrix, so the picture lands exactly where the camera saw it whatever
the mesh density, and it stays there when the camera moves on. A point is textured only when it
lies inside the frame, in front of the camera, no farther than the captured depth at its pixel
(plus a tolerance: what the camera did not see keeps its own material), and faces the camera
(grazing surfaces fade out). The group's Factor mixes the projected shader over the shader the
user's Material Output had, in the user's own material: their nodes stay as they are, one link
is rerouted through a Mix Shader, and `remove_projection` (or undo) puts it back.

Objects sharing a material take the projection only where they carry this projection's id
(object custom property `t2i_projection`, read by an Attribute node), so another object with
the same material is not textured by accident.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ...compositor import camera_frame, compat
from ...compositor.capture import CaptureError, capture_depth
from ...compositor.scene_state import restoring
from ...t2i_core import exr
from ...t2i_core.depth_encoding import z_for_file
from ...t2i_core.projection import CameraParams, CameraView
from . import images

VIEW_PROP = "t2i_view"  # on a result image: the CameraView it was generated from
DEPTH_PROP = "t2i_depth"  # on a result image: its job's planar-depth EXR
OBJECT_PROP = "t2i_projection"  # on an object: the id of the projection it takes
NODE_TAG = "t2i_projection_node"  # custom property on every node this module adds
BASE_MATERIAL = "T2I Base"  # given to faces that had no material
BAKE_UV = "T2I Bake"


class ProjectionError(Exception):
    """A projection or bake the user must fix something for."""


@dataclass(frozen=True)
class ProjectionOptions:
    """What `scene.t2i.projection` holds, as plain values (defaults = the settings')."""

    shading: str = "EMISSION"
    texture_filter: str = "Closest"
    occlusion_tolerance: float = 0.01
    fade_start: float = np.radians(60.0)
    fade_end: float = np.radians(85.0)
    use_bake: bool = False
    bake_size: int = 1024
    bake_uv: str = "AUTO"
    bake_margin: int = 8

    @classmethod
    def from_scene(cls, scene: bpy.types.Scene) -> ProjectionOptions:
        s = scene.t2i.projection
        return cls(shading=s.shading, texture_filter=s.texture_filter,
                   occlusion_tolerance=s.occlusion_tolerance,
                   fade_start=s.fade_start, fade_end=s.fade_end, use_bake=s.use_bake,
                   bake_size=s.bake_size, bake_uv=s.bake_uv, bake_margin=s.bake_margin)


# --- the camera's view ------------------------------------------------------------------------

def camera_params(camera: bpy.types.Object) -> CameraParams:
    if camera_frame.is_panoramic(camera):
        raise ProjectionError(f"camera '{camera.name}' is panoramic: projection needs a "
                              "perspective or orthographic camera")
    return camera_frame.camera_params(camera)


def camera_view(camera: bpy.types.Object | None, size: tuple[int, int]) -> CameraView:
    """The camera's view now, for a `size` frame (the generated image's size)."""
    if camera is None or camera.type != "CAMERA":
        raise ProjectionError("projection needs a camera: set Scene > Camera")
    return CameraView.from_camera(camera_params(camera), np.array(camera.matrix_world), size)


def remember_view(image: bpy.types.Image, view: CameraView, depth_path: Path | None) -> None:
    """Keep on a result image the view and depth it was generated from, so projecting it later
    uses them even after the camera moved."""
    image[VIEW_PROP] = view.to_list()
    if depth_path is not None:
        image[DEPTH_PROP] = str(depth_path)


def _remembered(image: bpy.types.Image) -> tuple[CameraView, Path] | None:
    values, depth = image.get(VIEW_PROP), image.get(DEPTH_PROP)
    if values is None or not depth or not Path(bpy.path.abspath(depth)).is_file():
        return None
    try:
        return CameraView.from_list(list(values)), Path(bpy.path.abspath(depth))
    except ValueError:
        return None


def _view_and_depth(scene: bpy.types.Scene, image: bpy.types.Image) -> tuple[CameraView, Path]:
    """The image's own view and depth when it has them; else the scene camera now and a depth
    captured now, written beside the results."""
    remembered = _remembered(image)
    if remembered is not None:
        return remembered
    size = (int(image.size[0]), int(image.size[1]))
    if min(size) <= 0:
        raise ProjectionError(f"image '{image.name}' has no pixels to project")
    stem = image.get(images.RESULT_TAG) or bpy.path.clean_name(image.name)
    return capture_view(scene, scene.camera, size,
                        images.output_folder(scene) / f"{stem}_projection_depth.exr")


def capture_view(scene: bpy.types.Scene, camera: bpy.types.Object | None,
                 size: tuple[int, int], path: Path) -> tuple[CameraView, Path]:
    """`camera`'s view and its planar depth, captured now (as the scene's depth settings say)
    and written to `path` as EXR."""
    view = camera_view(camera, size)
    depth_settings = scene.t2i.depth
    method = depth_settings.capture_path if depth_settings.capture_path != "VIEWPORT" else "AUTO"
    try:
        with restoring() as restorer:
            restorer.set(scene, "camera", camera)
            depth = capture_depth(scene, *size, path=method,
                                  engine=depth_settings.capture_engine,
                                  max_side=max(depth_settings.max_side, *size))
    except CaptureError as exc:
        raise ProjectionError(str(exc)) from None
    exr.write_grey_exr(path, z_for_file(depth.z, depth.background))
    return view, path


# --- the node graph --------------------------------------------------------------------------

def projection_id(image: bpy.types.Image) -> int:
    """A small whole number per image, exact in a float attribute."""
    return zlib.crc32(image.name.encode()) % 1_000_000 + 1


def _depth_image(path: Path, name: str) -> bpy.types.Image:
    """The depth as a float image (a new one each time: earlier projections may still use
    theirs)."""
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = name
    image.colorspace_settings.name = "Non-Color"
    if hasattr(image, "use_half_precision"):
        image.use_half_precision = False  # metres, 1e10 for background: no half floats
    if images.is_temporary(path) or not bpy.data.filepath:
        image.pack()
    return image


class _Graph:
    """Node building with less noise: math nodes, constants, links."""

    def __init__(self, tree: bpy.types.NodeTree):
        self.tree = tree
        self.x = -1400

    def node(self, idname: str, **props) -> bpy.types.Node:
        node = self.tree.nodes.new(idname)
        for key, value in props.items():
            setattr(node, key, value)
        node.location = (self.x, 0)
        self.x += 160
        return node

    def link(self, source, target) -> None:
        self.tree.links.new(source, target)

    def math(self, operation: str, a, b=None, c=None) -> bpy.types.NodeSocket:
        node = self.node("ShaderNodeMath", operation=operation)
        for socket, value in zip(node.inputs, (a, b, c), strict=False):
            if value is None:
                continue
            if isinstance(value, bpy.types.NodeSocket):
                self.link(value, socket)
            else:
                socket.default_value = float(value)
        return node.outputs[0]

    def vector(self, operation: str, a, b=None) -> bpy.types.Node:
        node = self.node("ShaderNodeVectorMath", operation=operation)
        for socket, value in zip(node.inputs, (a, b), strict=False):
            if value is None:
                continue
            if isinstance(value, bpy.types.NodeSocket):
                self.link(value, socket)
            else:
                socket.default_value = [float(v) for v in value]
        return node

    def dot(self, a, b) -> bpy.types.NodeSocket:
        return self.vector("DOT_PRODUCT", a, b).outputs["Value"]

    def product(self, *factors) -> bpy.types.NodeSocket:
        result = factors[0]
        for factor in factors[1:]:
            result = self.math("MULTIPLY", result, factor)
        return result


def _new_group(name: str) -> bpy.types.ShaderNodeTree:
    """A new group each time (Blender numbers the name): materials this projection does not
    touch may still use an earlier one."""
    group = bpy.data.node_groups.new(name, "ShaderNodeTree")
    group.interface.new_socket("Color", in_out="OUTPUT", socket_type="NodeSocketColor")
    group.interface.new_socket("Factor", in_out="OUTPUT", socket_type="NodeSocketFloat")
    group.interface.new_socket("Facing", in_out="OUTPUT", socket_type="NodeSocketFloat")
    return group


def _object_mask(g: _Graph, identifier: int) -> bpy.types.NodeSocket:
    attribute = g.node("ShaderNodeAttribute", attribute_type="OBJECT",
                       attribute_name=OBJECT_PROP)
    return g.math("COMPARE", attribute.outputs["Fac"], identifier, 0.5)


def projection_group(image: bpy.types.Image, view: CameraView, depth: bpy.types.Image,
                     options: ProjectionOptions, identifier: int) -> bpy.types.ShaderNodeTree:
    """Color: the picture seen from `view` at the shaded point; Factor: how much of it the
    point takes (frame, front, depth visibility, facing, this projection's objects)."""
    group = _new_group(f"T2I Projection {image.name}")
    g = _Graph(group)
    geometry = g.node("ShaderNodeNewGeometry")
    position, normal = geometry.outputs["Position"], geometry.outputs["Normal"]
    m = view.world_to_clip

    def row(index):
        return g.math("ADD", g.dot(position, m[index, :3]), m[index, 3])

    x, y = row(0), row(1)
    w = g.math("MAXIMUM", row(3), 1e-9)  # behind the camera: far outside the frame, no NaN
    u = g.math("MULTIPLY_ADD", g.math("DIVIDE", x, w), 0.5, 0.5)
    v = g.math("MULTIPLY_ADD", g.math("DIVIDE", y, w), 0.5, 0.5)
    uv = g.node("ShaderNodeCombineXYZ")
    g.link(u, uv.inputs[0])
    g.link(v, uv.inputs[1])
    picture = g.node("ShaderNodeTexImage", image=image, extension="CLIP",
                     interpolation=options.texture_filter)
    g.link(uv.outputs[0], picture.inputs["Vector"])
    captured = g.node("ShaderNodeTexImage", image=depth, extension="EXTEND",
                      interpolation="Linear")
    g.link(uv.outputs[0], captured.inputs["Vector"])
    channels = g.node("ShaderNodeSeparateColor")
    g.link(captured.outputs["Color"], channels.inputs[0])
    planar = g.math("ADD", g.dot(position, view.axis), -float(view.origin @ view.axis))
    visible = g.math("LESS_THAN", planar,
                     g.math("MULTIPLY", channels.outputs[0], 1.0 + options.occlusion_tolerance))
    in_front = g.math("GREATER_THAN", planar, 0.0)
    if view.ortho:
        facing = g.dot(normal, -view.axis)
    else:
        towards = g.vector("NORMALIZE", g.vector("SUBTRACT", view.origin, position)
                           .outputs["Vector"]).outputs["Vector"]
        facing = g.dot(normal, towards)
    fade = g.node("ShaderNodeMapRange", data_type="FLOAT", interpolation_type="SMOOTHSTEP")
    g.link(facing, fade.inputs["Value"])
    fade.inputs["From Min"].default_value = float(np.cos(options.fade_end))
    fade.inputs["From Max"].default_value = float(np.cos(min(options.fade_start,
                                                             options.fade_end - 1e-3)))
    factor = g.product(picture.outputs["Alpha"], in_front, visible, fade.outputs["Result"],
                       _object_mask(g, identifier))
    out = g.node("NodeGroupOutput")
    g.link(picture.outputs["Color"], out.inputs["Color"])
    g.link(factor, out.inputs["Factor"])
    g.link(facing, out.inputs["Facing"])
    return group


def blend_group(views: list[bpy.types.ShaderNodeTree], name: str) -> bpy.types.ShaderNodeTree:
    """Several views' projections as one: each view weighs by its factor times its facing
    squared (a view that sees the surface head-on wins over one that sees it aslant); Factor is
    the largest view's factor."""
    group = _new_group(name)
    g = _Graph(group)
    weighted, total, factor, facing = None, None, None, None
    for view in views:
        node = g.node("ShaderNodeGroup", node_tree=view)
        weight = g.product(node.outputs["Factor"], node.outputs["Facing"],
                           node.outputs["Facing"])
        scaled = g.vector("SCALE", node.outputs["Color"])
        g.link(weight, scaled.inputs["Scale"])
        part = scaled.outputs["Vector"]
        weighted = part if weighted is None else g.vector("ADD", weighted, part).outputs[0]
        total = weight if total is None else g.math("ADD", total, weight)
        factor = node.outputs["Factor"] if factor is None else g.math(
            "MAXIMUM", factor, node.outputs["Factor"])
        facing = node.outputs["Facing"] if facing is None else g.math(
            "MAXIMUM", facing, node.outputs["Facing"])
    colour = g.vector("SCALE", weighted)
    g.link(g.math("DIVIDE", 1.0, g.math("MAXIMUM", total, 1e-6)), colour.inputs["Scale"])
    out = g.node("NodeGroupOutput")
    g.link(colour.outputs["Vector"], out.inputs["Color"])
    g.link(factor, out.inputs["Factor"])
    g.link(facing, out.inputs["Facing"])
    return group


def baked_group(obj: bpy.types.Object, image: bpy.types.Image, uv_map: str,
                identifier: int) -> bpy.types.ShaderNodeTree:
    """Color and Factor from a baked image through a UV map (alpha = the projection's factor)."""
    group = _new_group(f"T2I Baked {obj.name}")
    g = _Graph(group)
    uv = g.node("ShaderNodeUVMap", uv_map=uv_map)
    texture = g.node("ShaderNodeTexImage", image=image, interpolation="Linear")
    g.link(uv.outputs["UV"], texture.inputs["Vector"])
    out = g.node("NodeGroupOutput")
    g.link(texture.outputs["Color"], out.inputs["Color"])
    g.link(g.product(texture.outputs["Alpha"], _object_mask(g, identifier)),
           out.inputs["Factor"])
    return group


# --- the user's materials ----------------------------------------------------------------------

def _ours(node: bpy.types.Node) -> bool:
    return bool(node.get(NODE_TAG))


def _surface_outputs(tree: bpy.types.NodeTree) -> list[bpy.types.Node]:
    """The Material Output nodes Cycles and EEVEE render (one node, or one per engine)."""
    found = []
    for target in ("CYCLES", "EEVEE"):
        node = tree.get_output_node(target)
        if node is not None and node not in found:
            found.append(node)
    return found


def _projection_node(tree: bpy.types.NodeTree) -> bpy.types.Node | None:
    return next((n for n in tree.nodes if _ours(n) and n.bl_idname == "ShaderNodeGroup"), None)


def strip_material(material: bpy.types.Material) -> bool:
    """Take this module's nodes out of a material and reconnect what they covered; True if
    there were any."""
    tree = material.node_tree
    if tree is None:
        return False
    ours = [node for node in tree.nodes if _ours(node)]
    for mix in ours:
        if mix.bl_idname != "ShaderNodeMixShader":
            continue
        source = mix.inputs[1].links[0].from_socket if mix.inputs[1].is_linked else None
        targets = [link.to_socket for link in mix.outputs[0].links]
        for target in targets:
            if source is not None:
                tree.links.new(source, target)
            else:
                for link in list(target.links):
                    tree.links.remove(link)
    for node in ours:
        tree.nodes.remove(node)
    return bool(ours)


def _tag(node: bpy.types.Node, label: str) -> bpy.types.Node:
    node[NODE_TAG] = True
    node.label = label
    return node


def mix_into_material(material: bpy.types.Material, group: bpy.types.ShaderNodeTree,
                      shading: str) -> None:
    """Mix the projection over what the material's outputs show, keeping the user's nodes."""
    strip_material(material)
    compat.use_material_nodes(material)
    tree = material.node_tree
    outputs = _surface_outputs(tree)
    if not outputs:
        outputs = [tree.nodes.new("ShaderNodeOutputMaterial")]
    anchor = outputs[0].location
    group_node = _tag(tree.nodes.new("ShaderNodeGroup"), "T2I Projection")
    group_node.node_tree = group
    group_node.location = (anchor.x - 500, anchor.y - 300)
    if shading == "LIT":
        projected = tree.nodes.new("ShaderNodeBsdfPrincipled")
        tree.links.new(group_node.outputs["Color"], projected.inputs["Base Color"])
    else:
        projected = tree.nodes.new("ShaderNodeEmission")
        tree.links.new(group_node.outputs["Color"], projected.inputs["Color"])
        projected.inputs["Strength"].default_value = 1.0
    _tag(projected, "T2I Projected").location = (anchor.x - 250, anchor.y - 300)
    for output in outputs:
        surface = output.inputs["Surface"]
        source = surface.links[0].from_socket if surface.is_linked else None
        mix = _tag(tree.nodes.new("ShaderNodeMixShader"), "T2I Projection Mix")
        mix.inputs[0].default_value = 0.0  # should the group go missing: their shader only
        mix.location = (output.location.x, output.location.y + 150)
        output.location = (output.location.x + 200, output.location.y)
        tree.links.new(group_node.outputs["Factor"], mix.inputs[0])
        if source is not None:
            tree.links.new(source, mix.inputs[1])
        tree.links.new(projected.outputs[0], mix.inputs[2])
        tree.links.new(mix.outputs[0], surface)


def _base_material() -> bpy.types.Material:
    material = bpy.data.materials.get(BASE_MATERIAL)
    if material is None:
        material = bpy.data.materials.new(BASE_MATERIAL)
        compat.use_material_nodes(material)
    return material


def _materials(obj: bpy.types.Object) -> list[bpy.types.Material]:
    """The object's materials; faces without one get the plain base material (else there is
    nothing to mix over)."""
    if not obj.material_slots:
        obj.data.materials.append(_base_material())
    for slot in obj.material_slots:
        if slot.material is None:
            slot.material = _base_material()
    found: list[bpy.types.Material] = []
    for slot in obj.material_slots:
        if slot.material not in found:
            found.append(slot.material)
    return found


def _meshes(objects: list[bpy.types.Object]) -> list[bpy.types.Object]:
    meshes = [obj for obj in objects if obj is not None and obj.type == "MESH"]
    if not meshes:
        raise ProjectionError("select the meshes to project onto")
    return meshes


# --- what the operators call -------------------------------------------------------------------

def project(scene: bpy.types.Scene, image: bpy.types.Image, objects: list[bpy.types.Object],
            options: ProjectionOptions | None = None) -> list[str]:
    """Project `image` onto the meshes among `objects` from the view it was generated from
    (else the scene camera now); bake too when the options say so. Returns the meshes'
    names."""
    return project_views(scene, [image], objects, options)


def project_views(scene: bpy.types.Scene, pictures: list[bpy.types.Image],
                  objects: list[bpy.types.Object],
                  options: ProjectionOptions | None = None) -> list[str]:
    """Project one picture, or several seen from different cameras blended by view angle and
    visibility (`blend_group`), onto the meshes among `objects`."""
    options = options or ProjectionOptions.from_scene(scene)
    meshes = _meshes(objects)
    if options.use_bake:
        for obj in meshes:
            _bake_uv_layer(obj, options.bake_uv, check_only=True)  # refuse before changing
    identifier = projection_id(pictures[0])
    groups = []
    for image in pictures:
        view, depth_path = _view_and_depth(scene, image)
        depth = _depth_image(depth_path, f"T2I Depth {image.name}")
        groups.append(projection_group(image, view, depth, options, identifier))
    group = groups[0] if len(groups) == 1 else blend_group(
        groups, f"T2I Views {pictures[0].name}")
    for obj in meshes:
        obj[OBJECT_PROP] = identifier
        for material in _materials(obj):
            mix_into_material(material, group, options.shading)
    if options.use_bake:
        bake(scene, meshes, options)
    return [obj.name for obj in meshes]


def remove_projection(objects: list[bpy.types.Object]) -> list[str]:
    """Take projections and bakes out of the meshes' materials; names of those changed."""
    changed = []
    for obj in _meshes(objects):
        materials = {slot.material for slot in obj.material_slots if slot.material}
        stripped = [strip_material(material) for material in materials]
        if OBJECT_PROP in obj:
            del obj[OBJECT_PROP]
        if any(stripped):
            changed.append(obj.name)
    return changed


def _bake_uv_layer(obj: bpy.types.Object, choice: str, check_only: bool = False):
    mesh = obj.data
    if choice == "AUTO" and mesh.uv_layers.active is not None:
        return mesh.uv_layers.active
    existing = mesh.uv_layers.get(BAKE_UV)
    if existing is not None:
        return existing
    if len(mesh.uv_layers) >= 8:
        raise ProjectionError(f"'{obj.name}' already has 8 UV maps, the most Blender allows: "
                              "remove one, or bake into its own UVs (Bake UVs: Object's UVs)")
    if check_only:
        return None
    layer = mesh.uv_layers.new(name=BAKE_UV)
    _unwrap(obj, layer)
    return mesh.uv_layers[BAKE_UV]


def _unwrap(obj: bpy.types.Object, layer) -> None:
    """Smart UV Project into `layer` (Blender's own unwrap, in Edit Mode on this object)."""
    view_layer = bpy.context.view_layer
    with restoring() as restorer:
        _use_uv_layer(obj.data, layer.name, restorer)
        _select_only(view_layer, obj, restorer)
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            bpy.ops.mesh.select_all(action="SELECT")
            bpy.ops.uv.smart_project(island_margin=0.01)
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")


def _select_only(view_layer: bpy.types.ViewLayer, obj: bpy.types.Object, restorer) -> None:
    selected = [o for o in view_layer.objects if o.select_get()]
    active = view_layer.objects.active

    def put_back():
        for o in view_layer.objects:
            o.select_set(o in selected)
        view_layer.objects.active = active

    restorer.on_restore(put_back)
    for o in selected:
        o.select_set(False)
    obj.select_set(True)
    view_layer.objects.active = obj


def bake(scene: bpy.types.Scene, objects: list[bpy.types.Object],
         options: ProjectionOptions | None = None) -> list[bpy.types.Image]:
    """Bake each mesh's projection into an image through its UVs (Cycles, emission), then let
    its materials show the baked image instead of the live projection. The image's alpha is the
    projection's factor, so the user's material still shows where the camera did not reach."""
    options = options or ProjectionOptions.from_scene(scene)
    if bpy.context.mode != "OBJECT":
        raise ProjectionError("baking works in Object Mode: leave Edit Mode first")
    meshes = _meshes(objects)
    for obj in meshes:
        if not any(_projection_node(m.node_tree) for m in _own_materials(obj)):
            raise ProjectionError(f"'{obj.name}' has no projection to bake: project a result "
                                  "onto it first")
        _bake_uv_layer(obj, options.bake_uv, check_only=True)
    baked = []
    for obj in meshes:
        layer = _bake_uv_layer(obj, options.bake_uv)
        baked.append(_bake_one(scene, obj, layer.name, options))
    return baked


def _own_materials(obj: bpy.types.Object) -> list[bpy.types.Material]:
    return [slot.material for slot in obj.material_slots
            if slot.material is not None and slot.material.node_tree is not None]


def _bake_one(scene: bpy.types.Scene, obj: bpy.types.Object, uv_map: str,
              options: ProjectionOptions) -> bpy.types.Image:
    size = options.bake_size
    name = f"T2I Bake {obj.name}"
    # new each time (Blender numbers the name): a bake may read an earlier bake's image
    colour = bpy.data.images.new(name, size, size, alpha=True)
    factor = bpy.data.images.new(f"{name} factor", size, size, float_buffer=True)
    factor.colorspace_settings.name = "Non-Color"
    materials = [m for m in _own_materials(obj) if _projection_node(m.node_tree)]
    try:
        with restoring() as restorer:
            _bake_settings(scene, obj, uv_map, options, restorer)
            for output_name, target in (("Color", colour), ("Factor", factor)):
                with restoring() as routing:
                    for material in materials:
                        _route_for_bake(material, output_name, target, routing)
                    bpy.ops.object.bake(type="EMIT")
        rgba = np.empty(size * size * 4, np.float32)
        colour.pixels.foreach_get(rgba)
        alpha = np.empty(size * size * 4, np.float32)
        factor.pixels.foreach_get(alpha)
        rgba[3::4] = np.clip(alpha[0::4], 0.0, 1.0)
        colour.pixels.foreach_set(rgba)
        colour.pack()
    finally:
        bpy.data.images.remove(factor)
    group = baked_group(obj, colour, uv_map, int(obj.get(OBJECT_PROP, 0)))
    for material in materials:
        _projection_node(material.node_tree).node_tree = group
    return colour


def _bake_settings(scene: bpy.types.Scene, obj: bpy.types.Object, uv_map: str,
                   options: ProjectionOptions, restorer) -> None:
    restorer.set(scene.render, "engine", "CYCLES")
    restorer.set_if_present(scene.cycles, samples=4, use_denoising=False, bake_type="EMIT",
                            use_adaptive_sampling=False)
    bake_settings = scene.render.bake
    restorer.set_many(bake_settings, target="IMAGE_TEXTURES", use_clear=True,
                      use_selected_to_active=False, margin=options.bake_margin)
    _use_uv_layer(obj.data, uv_map, restorer)
    _select_only(bpy.context.view_layer, obj, restorer)


def _use_uv_layer(mesh: bpy.types.Mesh, name: str, restorer) -> None:
    """Make `name` the active UV map (what unwrapping and baking use) until restored. Kept by
    name: adding a layer invalidates Python references to the old ones."""
    active = mesh.uv_layers.active.name if mesh.uv_layers.active is not None else None

    def put_back():
        layer = mesh.uv_layers.get(active) if active else None
        if layer is not None:
            mesh.uv_layers.active = layer

    restorer.on_restore(put_back)
    mesh.uv_layers.active = mesh.uv_layers[name]


def _route_for_bake(material: bpy.types.Material, output_name: str, target: bpy.types.Image,
                    restorer) -> None:
    """For one bake: the material's outputs show only the projection's `output_name` as
    emission, and an image node holding `target` is active (where Cycles bakes to)."""
    tree = material.node_tree
    group_node = _projection_node(tree)
    emission = tree.nodes.new("ShaderNodeEmission")
    tree.links.new(group_node.outputs[output_name], emission.inputs["Color"])
    sink = tree.nodes.new("ShaderNodeTexImage")
    sink.image = target
    previous_active = tree.nodes.active
    tree.nodes.active = sink
    restored = []
    for output in _surface_outputs(tree):
        surface = output.inputs["Surface"]
        restored.append((surface, surface.links[0].from_socket if surface.is_linked else None))
        tree.links.new(emission.outputs[0], surface)

    def put_back():
        for surface, source in restored:
            if source is not None:
                tree.links.new(source, surface)
        tree.nodes.remove(emission)
        tree.nodes.remove(sink)
        if previous_active is not None:
            tree.nodes.active = previous_active

    restorer.on_restore(put_back)
