"""Depth and motion vectors from `capture_motion` on a 6-frame shot, against the analytic
motion of the shot's objects and cameras.

The shot (devtools.scenes.motion_shot): a camera that moves and pans over a textured ground
plane, a cube that moves and turns, the (textured) world visible above the horizon. Every
material is emission and the scene's own render is Cycles at one sample with a tiny box filter,
so each pixel of the colour render is its centre's texture colour: a warp can be compared with
the next frame exactly up to the bilinear floor (the same warp with the analytic flow).
"""

from __future__ import annotations

import importlib

import bpy
import numpy as np
import pytest
from PIL import Image

from devtools.scenes import MOTION_BOX_SIZE, motion_shot

from .conftest import MODULE

W, H = 128, 96
FRAMES = range(1, 7)
BOX_SIZE = MOTION_BOX_SIZE


def _module(name: str):
    return importlib.import_module(f"{MODULE}.{name}")


@pytest.fixture
def capture_module():
    return _module("compositor.motion_capture")


@pytest.fixture
def motion():
    return _module("t2i_core.motion")


@pytest.fixture
def shot(scene):
    return (scene, *motion_shot(scene))


def _capture_all(capture_module, scene, folder, colour=True, **kwargs):
    capture = capture_module.capture_motion
    return {frame: capture(scene, frame, W, H, folder, colour=colour, **kwargs)
            for frame in FRAMES}


# --- the analytic motion --------------------------------------------------------------------

def _views(scene, camera):
    """frame -> projection.CameraView of the camera at that frame (render size)."""
    projection, camera_frame = _module("t2i_core.projection"), _module("compositor.camera_frame")
    views = {}
    for frame in (FRAMES[0] - 1, *FRAMES, FRAMES[-1] + 1):
        scene.frame_set(frame)
        views[frame] = projection.CameraView.from_camera(
            camera_frame.camera_params(camera), np.array(camera.matrix_world), (W, H))
    return views


def _box_matrices(scene, box):
    matrices = {}
    for frame in (FRAMES[0] - 1, *FRAMES, FRAMES[-1] + 1):
        scene.frame_set(frame)
        matrices[frame] = np.array(box.matrix_world)
    return matrices


def _raster(view, points):
    """(H, W, 2) Blender raster positions (x right, y UP, pixels) of world points."""
    uv = view.frame_coordinates(points.reshape(-1, 3)).reshape(*points.shape[:2], 2)
    return uv * np.array([W, H])


class Truth:
    """For each frame: what each pixel sees (0 world, 1 ground, 2 box), its world point and
    where that point was in the previous frame, and the analytic vector pass (X,Y = previous
    - here, Z,W = here - next, raster y up)."""

    def __init__(self, scene, camera, box, captures):
        projection = _module("t2i_core.projection")
        self.views = _views(scene, camera)
        boxes = _box_matrices(scene, box)
        centres = np.stack(np.meshgrid((np.arange(W) + 0.5), H - (np.arange(H) + 0.5)), -1)
        self.kind, self.vectors, self.points, self.previous_points = {}, {}, {}, {}
        for frame, capture in captures.items():
            view = self.views[frame]
            background = capture.background
            points = projection.pixel_points(view, np.where(background, 1.0, capture.depth))
            local = (np.linalg.inv(boxes[frame]) @ np.concatenate(
                [points, np.ones((H, W, 1))], -1)[..., None])[..., :3, 0]
            on_box = (np.abs(local) <= BOX_SIZE / 2 + 1e-3).all(-1) & ~background
            kind = np.where(background, 0, np.where(on_box, 2, 1))
            vectors = np.zeros((H, W, 4))
            for other, sign, channels in ((frame - 1, 1, slice(0, 2)),
                                          (frame + 1, -1, slice(2, 4))):
                moved = np.where(on_box[..., None], _through(boxes[other] @ np.linalg.inv(
                    boxes[frame]), points), points)
                offset = _raster(self.views[other], moved) - centres
                vectors[..., channels] = sign * offset
                if other < frame:
                    self.previous_points[frame] = moved
            vectors[background] = 0.0
            self.kind[frame], self.vectors[frame], self.points[frame] = kind, vectors, points

    def interior(self, frame, margin=1):
        """Pixels of geometry whose (2 * margin + 1) square sees one kind of thing."""
        kind = self.kind[frame]
        same = kind > 0
        for dy in range(-margin, margin + 1):
            for dx in range(-margin, margin + 1):
                shifted = np.full_like(kind, -1)
                shifted[max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
                    kind[max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
                same &= shifted == kind
        return same

    def background_flow(self, frame):
        """(H, W, 2) image-space flow (rows down) of world directions to the previous frame."""
        projection_view = self.views[frame]
        inverse = np.linalg.inv(projection_view.world_to_clip)
        xs = (np.arange(W) + 0.5) / W * 2 - 1
        ys = 1 - (np.arange(H) + 0.5) / H * 2
        x, y = np.meshgrid(xs, ys)
        far = np.stack([x, y, np.ones_like(x), np.ones_like(x)], -1) @ inverse.T
        direction = far[..., :3] / far[..., 3:] - projection_view.origin
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        points = self.views[frame - 1].origin + 1e7 * direction
        raster = _raster(self.views[frame - 1], points)
        cols, rows = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
        return np.stack([raster[..., 0] - cols, (H - raster[..., 1]) - rows], -1)

    def flow(self, frame):
        """The analytic `flow_to_previous`: image space, background by direction."""
        flow = np.stack([self.vectors[frame][..., 0], -self.vectors[frame][..., 1]], -1)
        background = self.kind[frame] == 0
        flow[background] = self.background_flow(frame)[background]
        return flow


def _through(matrix, points):
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _colour(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """The shot captured once for the tests that only look at the result (frames 1..6 with
    their colour renders) and its analytic truth."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    camera, box, _plane = motion_shot(scene)
    captures = _capture_all(_module("compositor.motion_capture"), scene,
                            tmp_path_factory.mktemp("shot"))
    return scene, captures, Truth(scene, camera, box, captures)


# --- the tests ------------------------------------------------------------------------------

def test_vectors_match_the_analytic_motion_of_camera_and_objects(captured):
    _scene, captures, truth = captured
    for frame, capture in captures.items():
        interior = truth.interior(frame)
        assert (truth.kind[frame][interior] == 2).sum() > 100, "the box is in view"
        assert (truth.kind[frame] == 0).sum() > 500, "the world is in view"
        error = np.abs(capture.vectors - truth.vectors[frame])[interior]
        moving = np.abs(truth.vectors[frame][interior]).max()
        assert moving > 3, f"frame {frame}: the shot moves"
        assert error.max() < 0.05, f"frame {frame}: {error.max():.4f} px off"
        # the world gets zero vectors: the reprojection below is what moves it
        assert not capture.vectors[truth.kind[frame] == 0].any()


def test_depth_is_the_planar_distance_of_what_each_pixel_sees(motion, captured):
    _scene, captures, truth = captured
    for frame, capture in captures.items():
        view = truth.views[frame]
        assert capture.depth[capture.background].min() >= 1e9
        # the ground plane's point of each pixel, straight from the ray
        seen = truth.points[frame][truth.interior(frame) & (truth.kind[frame] == 1)]
        np.testing.assert_allclose(seen[:, 2], 0.0, atol=1e-3)
        camera = capture.camera.world_from_camera
        np.testing.assert_allclose(camera[:3, 3], view.origin, atol=1e-6)


def test_the_flow_to_the_previous_frame_matches_including_the_world(motion, captured):
    _scene, captures, truth = captured
    for frame in FRAMES[1:]:
        flow = motion.flow_to_previous(captures[frame], captures[frame - 1])
        expected = truth.flow(frame)
        sky = truth.kind[frame] == 0
        assert np.abs(expected[sky]).max() > 2, "the world moves with the pan"
        np.testing.assert_allclose(flow[sky], expected[sky], atol=0.01)
        interior = truth.interior(frame)
        assert np.abs(flow - expected)[interior].max() < 0.05


def _truly_carried(truth, captures, frame):
    """(visible, occluded) pixels of `frame`, decided from the analytic motion: the point was
    in the previous frame's picture (inside it, nothing nearer at all four pixels around where
    it was) or clearly hidden there (something nearer at all four, or outside the frame).
    Pixels near a depth edge of the previous frame are neither."""
    prev = captures[frame - 1]
    flow = truth.flow(frame)
    cols, rows = np.meshgrid(np.arange(W, dtype=float), np.arange(H, dtype=float))
    x, y = cols + flow[..., 0], rows + flow[..., 1]
    outside = (x < -0.5) | (x > W - 0.5) | (y < -0.5) | (y > H - 0.5)  # as out_of_frame
    x0 = np.clip(np.floor(x).astype(int), 0, W - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, H - 2)
    prev_depth = np.where(prev.background, np.inf, prev.depth)
    around = np.stack([prev_depth[y0 + dy, x0 + dx] for dy in (0, 1) for dx in (0, 1)], -1)
    nearest, farthest = around.min(-1), around.max(-1)
    background = truth.kind[frame] == 0
    point_depth = np.where(background, np.inf,
                           truth.views[frame - 1].planar_depth(
                               truth.previous_points[frame].reshape(-1, 3)).reshape(H, W))
    with np.errstate(invalid="ignore"):
        hidden = np.where(background, np.isfinite(farthest), point_depth > farthest * 1.02)
        flat = np.where(background, ~np.isfinite(nearest),
                        (farthest - nearest <= 0.03 * point_depth)
                        & (np.abs(point_depth - nearest) <= 0.02 * point_depth))
    return flat & ~outside, hidden | outside


def test_the_mask_catches_the_occlusions_with_few_false_alarms(motion, captured):
    _scene, captures, truth = captured
    caught = occluded_total = false_alarms = visible_total = 0
    for frame in FRAMES[1:]:
        visible, occluded = _truly_carried(truth, captures, frame)
        tight = motion.occlusion_mask(captures[frame], captures[frame - 1], dilate_px=0)
        dilated = motion.occlusion_mask(captures[frame], captures[frame - 1], dilate_px=1)
        assert dilated[occluded].all(), f"frame {frame}: {(~dilated[occluded]).sum()} missed"
        caught += tight[occluded].sum()
        occluded_total += occluded.sum()
        false_alarms += tight[visible].sum()
        visible_total += visible.sum()
    assert occluded_total > 200, "the shot has occlusions"
    assert caught / occluded_total > 0.99
    assert false_alarms / visible_total < 0.01


def test_warped_colour_matches_the_next_frame_within_the_bilinear_floor(motion, captured):
    _scene, captures, truth = captured
    for frame in FRAMES[1:]:
        cur, prev = captures[frame], captures[frame - 1]
        assert cur.colour.name == f"colour_{frame:04d}.png"
        picture, previous = _colour(cur.colour).astype(float), _colour(prev.colour)
        visible, _ = _truly_carried(truth, captures, frame)
        kept = visible & ~motion.occlusion_mask(cur, prev)
        assert kept.mean() > 0.6
        warped = motion.warp_previous(previous, motion.flow_to_previous(cur, prev), (W, H))
        floor = motion.warp_previous(previous, truth.flow(frame), (W, H))
        unwarped = np.abs(previous - picture)[kept].mean()
        error = np.abs(warped - picture)[kept].mean()
        floor_error = np.abs(floor - picture)[kept].mean()
        assert error <= floor_error * 1.05 + 0.05, (frame, error, floor_error)
        assert error < 0.3 * unwarped, (frame, error, unwarped)
        sky = kept & (truth.kind[frame] == 0)
        assert sky.sum() > 300
        assert np.abs(warped - picture)[sky].mean() <= \
            np.abs(floor - picture)[sky].mean() * 1.05 + 0.05


def test_generation_size_flow_and_mask_follow_the_render_size(motion, captured):
    """A render at 128x96 carrying a 256x192 picture: the flow doubles, the mask repeats."""
    _scene, captures, _truth = captured
    cur, prev = captures[4], captures[3]
    big = motion.occlusion_mask(cur, prev, size=(2 * W, 2 * H))
    np.testing.assert_array_equal(big[::2, ::2], motion.occlusion_mask(cur, prev))
    previous = np.asarray(Image.open(prev.colour).convert("RGB").resize((2 * W, 2 * H),
                                                                        Image.BILINEAR))
    warped = motion.warp_previous(previous, motion.flow_to_previous(cur, prev), (2 * W, 2 * H))
    picture = np.asarray(Image.open(cur.colour).convert("RGB").resize((2 * W, 2 * H),
                                                                      Image.BILINEAR))
    kept = ~big
    assert np.abs(warped.astype(float) - picture)[kept].mean() < \
        0.3 * np.abs(previous.astype(float) - picture)[kept].mean()


def test_a_capture_saved_and_loaded_gives_the_same_flow(motion, captured, tmp_path):
    _scene, captures, _truth = captured
    loaded = {frame: motion.load_motion(motion.save_motion(captures[frame], tmp_path / "shot"))
              for frame in (2, 3)}
    np.testing.assert_array_equal(motion.flow_to_previous(loaded[3], loaded[2]),
                                  motion.flow_to_previous(captures[3], captures[2]))
    assert loaded[3].colour == captures[3].colour


# --- the user's scene -----------------------------------------------------------------------

def _user_settings(scene):
    """What a capture must leave as it found it."""
    render, settings = scene.render, scene.render.image_settings
    view_layer = bpy.context.view_layer
    tree = addon_tree(scene)
    return {
        "frame": scene.frame_current, "engine": render.engine,
        "size": (render.resolution_x, render.resolution_y, render.resolution_percentage),
        "motion_blur": render.use_motion_blur, "compositing": render.use_compositing,
        "film_transparent": render.film_transparent,
        "passes": (view_layer.use_pass_vector, view_layer.use_pass_z),
        "format": (settings.file_format, settings.color_depth, getattr(settings, "exr_codec", "")),
        "filepath": render.filepath, "extension": render.use_file_extension,
        "samples": scene.cycles.samples, "filter": scene.cycles.filter_width,
        "world_sampling": scene.world.cycles.sampling_method,
        "tree": None if tree is None else (tree.name, sorted(n.name for n in tree.nodes),
                                           sorted(n.mute for n in tree.nodes)),
        "groups": sorted(g.name for g in bpy.data.node_groups),
        "images": sorted(i.name for i in bpy.data.images),
    }


def addon_tree(scene):
    return scene.compositing_node_group if hasattr(scene, "compositing_node_group") \
        else scene.node_tree


def _users_scene(addon, scene, tmp_path):
    """The shot as a user left it: Workbench, motion blur on, their own compositor with a
    File Output node, PNG output to their own path, frame 3, no vector pass, the world's
    importance map on."""
    motion_shot(scene)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.use_motion_blur = True
    scene.world.cycles.sampling_method = "AUTOMATIC"
    scene.render.filepath = str(tmp_path / "user" / "render_")
    scene.render.image_settings.file_format = "PNG"
    scene.frame_set(3)
    tree = addon.compositor.compat.scene_compositor(scene)
    user_output = tree.nodes.new("CompositorNodeOutputFile")
    user_output.name = "User File Output"
    if hasattr(user_output, "file_output_items"):  # 5.x
        user_output.directory = str(tmp_path / "user")
        user_output.file_output_items.new("RGBA", "Image")
    else:
        user_output.base_path = str(tmp_path / "user")
    layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
    tree.links.new(layers.outputs["Image"], user_output.inputs[0])
    bpy.context.view_layer.use_pass_vector = False


def test_the_users_scene_is_restored(addon, capture_module, scene, tmp_path):
    _users_scene(addon, scene, tmp_path)
    before = _user_settings(scene)
    capture = capture_module.capture_motion(scene, 5, W, H, tmp_path / "shot", colour=False)
    assert _user_settings(scene) == before
    assert np.abs(capture.vectors).max() > 1, "motion blur was turned off for the capture"
    assert not (tmp_path / "user").exists(), "the user's compositor did not run"
    # the colour render is the user's own render, their compositor included
    capture = capture_module.capture_motion(scene, 5, W, H, tmp_path / "shot", colour=True)
    assert _user_settings(scene) == before
    assert sorted(p.name for p in (tmp_path / "shot").iterdir()) == ["colour_0005.png"]
    assert capture.colour == tmp_path / "shot" / "colour_0005.png"


def test_the_users_scene_is_restored_after_a_failure(addon, capture_module, scene, tmp_path):
    _users_scene(addon, scene, tmp_path)
    before = _user_settings(scene)
    blocked = tmp_path / "not a folder"
    blocked.write_text("a file where the shot folder should be")
    with pytest.raises(OSError):
        capture_module.capture_motion(scene, 4, W, H, blocked, colour=True)
    assert _user_settings(scene) == before


def test_workbench_and_panoramic_cameras_are_refused(capture_module, scene, tmp_path):
    capture = capture_module
    motion_shot(scene)
    with pytest.raises(capture.CaptureError, match="Workbench has no vector pass"):
        capture.capture_motion(scene, 2, W, H, tmp_path, colour=False, engine="WORKBENCH")
    scene.camera.data.type = "PANO"
    with pytest.raises(capture.CaptureError, match="panoramic"):
        capture.capture_motion(scene, 2, W, H, tmp_path, colour=False)
    scene.camera = None
    with pytest.raises(capture.CaptureError, match="no active camera"):
        capture.capture_motion(scene, 2, W, H, tmp_path, colour=False)


def test_eevee_vectors_agree_with_the_analytic_motion(capture_module, shot, tmp_path):
    """EEVEE instead of Cycles (on 5.0 its first render in a process has zero vectors: the
    capture warms it up)."""
    scene, camera, box, _plane = shot
    capture = capture_module.capture_motion
    captures = {frame: capture(scene, frame, W, H, tmp_path, colour=False, engine="EEVEE")
                for frame in (2, 3)}
    truth = Truth(scene, camera, box, captures)
    for frame, result in captures.items():
        interior = truth.interior(frame, margin=2)
        error = np.abs(result.vectors - truth.vectors[frame])[interior]
        assert np.abs(truth.vectors[frame][interior]).max() > 3
        assert np.median(error) < 0.05 and np.percentile(error, 99) < 0.1, \
            (frame, np.median(error), np.percentile(error, 99), error.max())
