"""Depth -> control image in real Blender: files, encodings, range policies (locked across an
animation), and the node-group encoding computing exactly what numpy computes."""

from __future__ import annotations

import struct
import tempfile
import zlib
from pathlib import Path

import bpy
import numpy as np
import pytest

from devtools.scenes import add_box, add_camera, add_plane, add_tilted_plane, plane_depth

from . import depth_layouts as layouts

W, H = 64, 48


def _read_png(path) -> np.ndarray:
    """Grey 8/16-bit PNGs as the add-on writes them (one IDAT, rows filtered "None" or "Up"),
    decoded here rather than by the writer's own code."""
    data = path.read_bytes()
    _width, height, depth = struct.unpack(">IIB", data[16:25])
    start = data.index(b"IDAT") + 4
    (size,) = struct.unpack(">I", data[start - 8:start - 4])
    lines = np.frombuffer(zlib.decompress(data[start:start + size]), np.uint8).reshape(height, -1)
    filters, rows = lines[:, 0], lines[:, 1:].copy()
    assert set(filters.tolist()) <= {0, 2}, f"unexpected PNG row filters {set(filters.tolist())}"
    for y in range(1, height):
        if filters[y] == 2:  # "Up": stored minus the row above, mod 256
            rows[y] += rows[y - 1]
    return rows.view(">u2").astype(np.uint16) if depth == 16 else rows


def _png_text(path) -> dict[str, str]:
    data, text, pos = path.read_bytes(), {}, 8
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos:pos + 4])
        if data[pos + 4:pos + 8] == b"iTXt":
            key, _, value = data[pos + 8:pos + 8 + size].partition(b"\0\0\0\0\0")
            text[key.decode()] = value.decode()
        pos += size + 12
    return text


@pytest.fixture
def tilted(scene):
    scene.render.resolution_x, scene.render.resolution_y = W, H
    add_camera(scene, location=(0.0, 0.0, 0.0))
    add_tilted_plane(scene, distance=12.0, tilt_degrees=30.0)
    return scene


def test_control_image_files_hold_the_same_map(addon, tilted, tmp_path):
    make = addon.blender_t2i.generation.depth_control.make_control_image
    control = make(tilted, (W, H), tmp_path, "a")
    eight, sixteen = _read_png(control.path), _read_png(control.path16)
    assert eight.shape == sixteen.shape == (H, W) and sixteen.dtype == np.uint16
    assert np.abs(eight.astype(float) / 255 - sixteen.astype(float) / 65535).max() <= 0.5 / 255
    assert len(np.unique(sixteen)) > len(np.unique(eight))  # 16-bit keeps what 8-bit bands
    # The plane is tilted away from the camera towards the top of the frame... or the bottom:
    # whichever rows are nearer must be brighter.
    z = plane_depth(tilted, W, H, 12.0, 30.0)
    nearer_rows = np.argsort(z[:, W // 2])
    assert np.all(np.diff(sixteen[nearer_rows, W // 2].astype(int)) <= 0)
    text = _png_text(control.path)
    assert text["t2i:encoding"] == "inverse" and float(text["t2i:near"]) == pytest.approx(
        control.depth_range.near, rel=1e-5)
    image = bpy.data.images.load(str(control.path_exr))  # Blender reads our EXR
    pixels = np.empty(W * H * image.channels, np.float32)
    image.pixels.foreach_get(pixels)
    exr_z = pixels.reshape(H, W, image.channels)[::-1, :, 0]
    np.testing.assert_allclose(exr_z, z, rtol=0.005)


def test_the_image_shown_is_the_file_sent(tilted):
    tilted.t2i.use_render_size, tilted.t2i.width, tilted.t2i.height = False, W, H
    bpy.ops.t2i.capture_depth()
    shown = bpy.data.images["T2I Depth"]
    pixels = np.empty(W * H * shown.channels, np.float32)
    shown.pixels.foreach_get(pixels)
    shown_grey = np.round(pixels.reshape(H, W, shown.channels)[::-1, :, 0] * 255)
    np.testing.assert_array_equal(shown_grey, _read_png(Path(shown.filepath_raw)))


@pytest.mark.parametrize("policy", ["CLIP", "MANUAL"])
def test_fixed_range_policies_use_their_range(addon, tilted, tmp_path, policy):
    depth = tilted.t2i.depth
    depth.range_policy, depth.near, depth.far = policy, 11.0, 16.0
    tilted.camera.data.clip_start, tilted.camera.data.clip_end = 0.5, 40.0
    make = addon.blender_t2i.generation.depth_control.make_control_image
    control = make(tilted, (W, H), tmp_path, "p")
    expected = (0.5, 40.0) if policy == "CLIP" else (11.0, 16.0)
    assert (control.depth_range.near, control.depth_range.far) == pytest.approx(expected)


def test_linear_encoding_is_linear_in_metres(addon, tilted, tmp_path):
    depth = tilted.t2i.depth
    depth.encoding, depth.range_policy, depth.near, depth.far = "LINEAR", "MANUAL", 8.0, 20.0
    make = addon.blender_t2i.generation.depth_control.make_control_image
    control = make(tilted, (W, H), tmp_path, "l")
    z = plane_depth(tilted, W, H, 12.0, 30.0)
    got = _read_png(control.path16) / 65535
    np.testing.assert_allclose(got, np.clip((20.0 - z) / 12.0, 0, 1), atol=0.005)


@pytest.mark.parametrize(("near", "far", "colour"), [(1.0, 5.0, "black"), (100.0, 200.0, "white")])
def test_a_range_that_holds_nothing_is_reported_not_sent_flat(tilted, near, far, colour):
    depth = tilted.t2i.depth
    depth.range_policy, depth.near, depth.far = "MANUAL", near, far
    with pytest.raises(RuntimeError, match=f"all {colour}"):
        bpy.ops.t2i.capture_depth()


def test_locked_without_a_lock_says_what_to_do(tilted):
    tilted.t2i.depth.range_policy = "LOCKED"
    with pytest.raises(RuntimeError, match="Lock Depth Range"):
        bpy.ops.t2i.capture_depth()


@pytest.fixture
def animation(scene):
    """A box rising from 18 m to 8 m in front of the camera over frames 1-10."""
    add_camera(scene, location=(0.0, 0.0, 20.0))
    add_plane(scene, size=60.0)
    box = add_box(scene, 2.0, (0.0, 0.0, 1.0))
    for frame, z in ((1, 1.0), (10, 11.0)):
        box.location.z = z
        box.keyframe_insert("location", index=2, frame=frame)
    scene.frame_start, scene.frame_end = 1, 10
    scene.frame_set(5)
    scene.t2i.use_render_size, scene.t2i.width, scene.t2i.height = False, W, H
    return scene


def test_locked_range_is_identical_across_frames(addon, animation, tmp_path):
    make = addon.blender_t2i.generation.depth_control.make_control_image
    auto = []
    for frame in (1, 10):
        animation.frame_set(frame)
        auto.append(make(animation, (W, H), tmp_path, f"auto{frame}").depth_range)
    assert auto[0] != auto[1]  # what flickers without the lock
    animation.frame_set(5)
    animation.t2i.depth.frame_step = 3
    assert bpy.ops.t2i.lock_depth_range() == {"FINISHED"}
    assert animation.frame_current == 5
    assert animation.t2i.depth.range_policy == "LOCKED"
    locked = []
    for frame in (1, 4, 10):
        animation.frame_set(frame)
        control = make(animation, (W, H), tmp_path, f"locked{frame}")
        locked.append((control.depth_range, _png_text(control.path)["t2i:near"]))
    assert locked[0] == locked[1] == locked[2]
    near, far = locked[0][0].near, locked[0][0].far
    assert near <= min(r.near for r in auto) * 1.02 and far >= max(r.far for r in auto) * 0.98


def test_lock_uses_its_own_frame_range(animation):
    depth = animation.t2i.depth
    depth.use_scene_frame_range, depth.frame_start, depth.frame_end = False, 1, 1
    bpy.ops.t2i.lock_depth_range()
    near_first = depth.locked_near
    depth.frame_start = depth.frame_end = 10
    bpy.ops.t2i.lock_depth_range()
    assert depth.locked_near < near_first * 0.8  # the box came nearer


def _render_encoded(addon, scene, kind, depth_range, encoding) -> np.ndarray:
    """Render the tilted plane through the node-group encoding (compositor or material)."""
    capture, compat = addon.compositor.capture, addon.compositor.compat
    graph, shader = addon.compositor.graph, addon.compositor.shader
    view_layer = scene.view_layers[0]
    engine = "BLENDER_WORKBENCH" if kind == "COMPOSITOR" else "CYCLES"
    with tempfile.TemporaryDirectory() as folder:
        with addon.compositor.scene_state.restoring() as restorer:
            capture.prepare_render(scene, view_layer, engine, W, H, restorer)
            tree = compat.capture_tree(scene, "encoding test", restorer)
            layers = capture.add_node(tree, "CompositorNodeRLayers", restorer)
            layers.layer = view_layer.name
            socket = capture.add_exr_output(tree, folder, "encoded", restorer)
            if kind == "COMPOSITOR":
                node = capture.add_node(tree, "CompositorNodeGroup", restorer)
                node.node_tree = graph.encoding_group("COMPOSITOR")
                graph.set_encoding(node, depth_range, encoding)
                tree.links.new(layers.outputs["Depth"], node.inputs["Depth"])
                tree.links.new(node.outputs["Value"], socket)
            else:
                material = shader.depth_material(shader.PREVIEW_MATERIAL, encoded=True)
                restorer.on_restore(lambda: bpy.data.materials.remove(material))
                shader.set_preview_encoding(material, depth_range, encoding)
                shader.apply_material(view_layer, material, engine, restorer)
                tree.links.new(layers.outputs["Image"], socket)
            capture._render_still(scene, view_layer)
        return capture.read_exr_channel(folder, "encoded")


@pytest.mark.parametrize("kind", ["COMPOSITOR", "SHADER"])
@pytest.mark.parametrize("encoding", ["INVERSE", "LINEAR"])
def test_node_group_encoding_matches_numpy(addon, tilted, kind, encoding):
    encode = addon.t2i_core.depth_encoding
    depth_range = encode.DepthRange(11.5, 13.0)  # clamps at both ends of this view
    got = _render_encoded(addon, tilted, kind, depth_range, encoding)
    z = plane_depth(tilted, W, H, 12.0, 30.0)
    expected = encode.encode_depth(z, np.zeros(z.shape, bool), depth_range, encoding)
    assert expected.min() == 0.0 and expected.max() == 1.0
    np.testing.assert_allclose(got, expected, atol=0.004)


# --- layouts a new user starts with (the issue: the defaults failed on all three) ---

def _exr_z(path) -> np.ndarray:
    image = bpy.data.images.load(str(path))
    pixels = np.empty(image.size[0] * image.size[1] * image.channels, np.float32)
    image.pixels.foreach_get(pixels)
    z = pixels.reshape(image.size[1], image.size[0], image.channels)[::-1, :, 0]
    bpy.data.images.remove(image)
    return z


@pytest.mark.parametrize("encoding", ["INVERSE", "LINEAR"])
def test_a_deep_street_gets_a_valid_auto_range(addon, scene, tmp_path, encoding):
    layouts.street(scene)
    scene.t2i.depth.encoding = encoding
    make = addon.blender_t2i.generation.depth_control.make_control_image
    control = make(scene, (W, H), tmp_path, "street")
    z = _exr_z(control.path_exr)
    seen = z < 1e9
    near, far = np.percentile(z[seen], [0.5, 99.5])
    assert far / near > 100  # the layout the issue reports: far/near well past 20
    assert control.depth_range.near == pytest.approx(near, rel=1e-4)
    assert far < control.depth_range.far <= 10 * far * 1.0001
    eight, sixteen = _read_png(control.path), _read_png(control.path16)
    assert (eight[~seen] == 0).all() and eight[seen].max() == 255  # sky black, post white
    order = np.argsort(z[seen], kind="stable")
    assert np.all(np.diff(sixteen[seen][order].astype(int)) <= 0)  # farther is never brighter
    houses = (z > 30) & (z < 60)
    assert houses.sum() > 20 and 0 < eight[houses].min() <= eight[houses].max() < 255
    if encoding == "LINEAR":  # linear's margin holds at any ratio: the far floor is dark grey
        assert eight[seen & (z >= far)].max() >= 12
    else:  # inverse depth has no room for the 5% margin here: the far floor stays above black
        assert eight[houses].max() < 64 and sixteen[seen & (z <= far)].min() > 0


def test_capture_and_lock_work_on_a_deepstreet(scene):
    layouts.street(scene)
    assert bpy.ops.t2i.capture_depth() == {"FINISHED"}
    scene.frame_start = scene.frame_end = 1
    assert bpy.ops.t2i.lock_depth_range() == {"FINISHED"}
    depth = scene.t2i.depth
    assert depth.range_policy == "LOCKED" and depth.locked_far > 100 * depth.locked_near
    assert bpy.ops.t2i.capture_depth() == {"FINISHED"}


@pytest.mark.parametrize("encoding", ["INVERSE", "LINEAR"])
def test_a_flat_wall_is_mid_grey_with_the_background_black(addon, scene, tmp_path, encoding):
    layouts.wall(scene, size=2.0)
    scene.t2i.depth.encoding = encoding
    make = addon.blender_t2i.generation.depth_control.make_control_image
    control = make(scene, (W, H), tmp_path, "wall")
    wall = _exr_z(control.path_exr) < 1e9
    assert 0.2 < wall.mean() < 0.8
    eight = _read_png(control.path)
    assert set(np.unique(eight[wall]).tolist()) <= {133, 134, 135}
    assert (eight[~wall] == 0).all()


def test_a_flat_wall_locks_and_captures_at_a_larger_size(scene):
    """Locked at 256 px, captured at 384 px (a batch's default path): the wall's own float
    noise must not fall outside the locked range (it did: 'nearer than the depth range')."""
    layouts.wall(scene, size=20.0, width=384, height=288)  # the wall fills the frame
    scene.frame_start = scene.frame_end = 1
    assert bpy.ops.t2i.lock_depth_range() == {"FINISHED"}
    depth = scene.t2i.depth
    assert depth.locked_near < 5.0 < depth.locked_far
    assert bpy.ops.t2i.capture_depth() == {"FINISHED"}
    eight = _read_png(Path(bpy.data.images["T2I Depth"].filepath_raw))
    assert eight.shape == (288, 384) and set(np.unique(eight).tolist()) <= {133, 134, 135}


def test_camera_clip_out_to_1e6_is_reported_not_sent_black(scene):
    scene.render.resolution_x, scene.render.resolution_y = W, H
    add_camera(scene, location=(0.0, 0.0, 100.0), clip_end=1e6)
    add_plane(scene, size=400.0)
    scene.t2i.use_render_size, scene.t2i.width, scene.t2i.height = False, W, H
    scene.t2i.depth.range_policy = "CLIP"
    with pytest.raises(RuntimeError, match=r"Camera Clip's range 0.1-1e\+06 m puts everything "
                                           r"the camera sees \(100-100 m\) below 1/255.*all "
                                           r"black: use the Auto or Manual range"):
        bpy.ops.t2i.capture_depth()
    scene.t2i.depth.range_policy = "AUTO"
    assert bpy.ops.t2i.capture_depth() == {"FINISHED"}


@pytest.mark.parametrize("ortho", [False, True])
def test_a_camera_inside_an_object_is_reported(scene, ortho):
    layouts.inside_a_crate(scene, ortho=ortho)
    with pytest.raises(RuntimeError, match=r"camera 'Camera' is inside 'Crate'.*flip its normals"):
        bpy.ops.t2i.capture_depth()
    scene.frame_start = scene.frame_end = 1
    with pytest.raises(RuntimeError, match="inside 'Crate'"):
        bpy.ops.t2i.lock_depth_range()


@pytest.mark.parametrize("ortho", [False, True])
def test_a_room_with_inward_normals_is_not_inside_an_object(scene, ortho):
    layouts.inside_a_crate(scene, flip=True, ortho=ortho)
    assert bpy.ops.t2i.capture_depth() == {"FINISHED"}


# --- the range reports of Lock Depth Range, the preview and the compositor set-up ---

@pytest.fixture
def startup_street(addon):
    """Blender's startup file (screens with a 3D View) with the street in place of its cube."""
    bpy.ops.wm.read_homefile()
    scene = bpy.context.scene
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    return layouts.street(scene)


def _preview():
    area = next(a for a in bpy.context.window.screen.areas if a.type == "VIEW_3D")
    with bpy.context.temp_override(area=area):
        return bpy.ops.t2i.depth_preview()


def test_preview_and_compositor_nodes_take_the_auto_range_of_a_deep_street(startup_street):
    assert _preview() == {"FINISHED"}
    assert _preview() == {"FINISHED"}  # off again
    assert bpy.ops.t2i.add_compositor_nodes() == {"FINISHED"}


@pytest.mark.parametrize(("policy", "message"), [
    ("MANUAL", "Manual depth range needs 0 < Near < Far, got 30-20 m: set Near below Far"),
    ("LOCKED", "run Lock Depth Range"),
])
def test_preview_and_compositor_nodes_report_a_range_problem(startup_street, policy, message):
    depth = startup_street.t2i.depth
    depth.range_policy, depth.near, depth.far = policy, 30.0, 20.0
    with pytest.raises(RuntimeError, match=message):
        _preview()
    assert "t2i_depth_preview" not in startup_street
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.t2i.add_compositor_nodes()


def test_preview_compositor_nodes_and_lock_report_a_camera_inside_an_object(addon):
    bpy.ops.wm.read_homefile()
    scene = bpy.context.scene
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    layouts.inside_a_crate(scene)
    scene.frame_start = scene.frame_end = 1
    for run in (_preview, bpy.ops.t2i.add_compositor_nodes, bpy.ops.t2i.lock_depth_range):
        with pytest.raises(RuntimeError, match="inside 'Crate'"):
            run()
    assert scene.t2i.depth.range_policy == "AUTO"  # the failed lock changed nothing
