"""Flow, warp and occlusion maths on synthetic frames with exactly known motion
(tests/blender/test_motion_capture.py checks the same against Blender's own vector pass)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from t2i_src.t2i_core import motion
from t2i_src.t2i_core.motion import (
    CameraView,
    MotionFrame,
    flow_to_previous,
    load_motion,
    occlusion_mask,
    save_motion,
    warp_previous,
)
from t2i_src.t2i_core.projection import CameraParams, look_at, pixel_points
from t2i_src.t2i_core.projection import CameraView as ProjectionView

W, H = 40, 30
STILL = CameraView(np.eye(4), CameraParams())


def _frame(number: int, vectors: np.ndarray, camera: CameraView = STILL,
           background: np.ndarray | None = None) -> MotionFrame:
    height, width = vectors.shape[:2]
    background = np.zeros((height, width), bool) if background is None else background
    depth = np.where(background, 1e10, 5.0).astype(np.float32)
    return MotionFrame(number, depth, vectors.astype(np.float32), background, camera)


def _uniform(width: int, height: int, xy=(0.0, 0.0), zw=(0.0, 0.0)) -> np.ndarray:
    vectors = np.zeros((height, width, 4), np.float32)
    vectors[..., :2], vectors[..., 2:] = xy, zw
    return vectors


def _linear_picture(width: int, height: int, channels: int = 3) -> np.ndarray:
    """A picture bilinear interpolation reproduces exactly (affine in x and y)."""
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height))
    return np.stack([2.0 * cols + 0.5 * rows + 10 * c for c in range(channels)], axis=-1)


def test_the_vector_pass_becomes_an_image_space_offset_rows_down():
    # the picture moved 3 px right and 2 px down since the previous frame: Blender's X,Y
    # (previous - current, y up) is (-3, +2)
    cur = _frame(2, _uniform(W, H, xy=(-3.0, 2.0)))
    prev = _frame(1, _uniform(W, H, zw=(-3.0, 2.0)))
    flow = flow_to_previous(cur, prev)
    np.testing.assert_allclose(flow[..., 0], -3.0)
    np.testing.assert_allclose(flow[..., 1], -2.0)
    np.testing.assert_allclose(motion.flow_to_next(prev, cur)[..., 0], 3.0)
    np.testing.assert_allclose(motion.flow_to_next(prev, cur)[..., 1], 2.0)


def test_a_translated_picture_warps_back_exactly_inside_the_frame():
    rng = np.random.default_rng(1)
    prev_picture = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cur_picture = np.zeros_like(prev_picture)
    cur_picture[2:, 3:] = prev_picture[:-2, :-3]  # moved 3 right, 2 down
    cur = _frame(2, _uniform(W, H, xy=(-3.0, 2.0)))
    warped = warp_previous(prev_picture, flow_to_previous(cur, None), (W, H))
    assert warped.dtype == np.uint8
    np.testing.assert_array_equal(warped[2:, 3:], cur_picture[2:, 3:])


def test_a_subpixel_shift_is_interpolated_bilinearly():
    picture = _linear_picture(W, H)
    cur = _frame(2, _uniform(W, H, xy=(0.25, -0.75)))  # source 0.25 right, 0.75 down
    warped = warp_previous(picture, flow_to_previous(cur, None), (W, H))
    expected = _linear_picture(W, H) + 2.0 * 0.25 + 0.5 * 0.75
    np.testing.assert_allclose(warped[:-1, :-1], expected[:-1, :-1], atol=1e-4)


def test_a_rotated_picture_warps_to_the_rotation():
    # the picture turned 5 degrees about the frame centre: each pixel came from the point
    # turned back by 5 degrees
    angle = math.radians(5.0)
    cols, rows = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    cx, cy = (W - 1) / 2, (H - 1) / 2
    src_x = cx + math.cos(angle) * (cols - cx) + math.sin(angle) * (rows - cy)
    src_y = cy - math.sin(angle) * (cols - cx) + math.cos(angle) * (rows - cy)
    vectors = np.zeros((H, W, 4))
    vectors[..., 0], vectors[..., 1] = src_x - cols, -(src_y - rows)
    picture = _linear_picture(W, H, channels=1)[..., 0]
    warped = warp_previous(picture, flow_to_previous(_frame(2, vectors), None), (W, H))
    inside = (src_x >= 0) & (src_x <= W - 1) & (src_y >= 0) & (src_y <= H - 1)
    np.testing.assert_allclose(warped[inside], (2.0 * src_x + 0.5 * src_y)[inside], atol=1e-4)
    assert warped.dtype == np.float32 and inside.mean() > 0.8


def test_the_flow_is_scaled_to_the_generation_size_per_axis():
    # render 40x30, generation 80x45: 3 render px right is 6 generation px, 2 down is 3
    big_w, big_h = 80, 45
    cur = _frame(2, _uniform(W, H, xy=(-3.0, 2.0)))
    flow = motion.scale_flow(flow_to_previous(cur, None), (big_w, big_h))
    assert flow.shape == (big_h, big_w, 2)
    np.testing.assert_allclose(flow[..., 0], -6.0)
    np.testing.assert_allclose(flow[..., 1], -3.0)
    rng = np.random.default_rng(2)
    prev_picture = rng.integers(0, 256, (big_h, big_w), dtype=np.uint8)
    warped = warp_previous(prev_picture, flow_to_previous(cur, None), (big_w, big_h))
    np.testing.assert_array_equal(warped[3:, 6:], prev_picture[:-3, :-6])


def test_a_picture_of_the_wrong_size_is_refused():
    cur = _frame(2, _uniform(W, H))
    with pytest.raises(ValueError, match="generation size 64x64"):
        warp_previous(np.zeros((H, W, 3), np.uint8), flow_to_previous(cur, None), (64, 64))


def _moving_square(shift: int) -> tuple[MotionFrame, MotionFrame, np.ndarray]:
    """A 10x10 square over a still plane moving `shift` px right: frames 1 and 2 and the
    pixels of frame 2 that frame 1 did not show (the plane it uncovered)."""
    prev_vectors, cur_vectors = np.zeros((H, W, 4)), np.zeros((H, W, 4))
    rows = slice(10, 20)
    prev_vectors[rows, 10:20, 2] = -shift  # Z: here - next
    cur_vectors[rows, 10 + shift:20 + shift, 0] = -shift  # X: previous - here
    revealed = np.zeros((H, W), bool)
    revealed[rows, 10:10 + shift] = True
    return _frame(1, prev_vectors), _frame(2, cur_vectors), revealed


def test_the_forward_backward_check_marks_exactly_what_the_occluder_uncovered():
    prev, cur, revealed = _moving_square(4)
    mask = occlusion_mask(cur, prev, dilate_px=0)
    np.testing.assert_array_equal(mask, revealed)


def test_the_mask_is_dilated_by_the_given_pixels():
    prev, cur, revealed = _moving_square(4)
    mask = occlusion_mask(cur, prev, dilate_px=1)
    expected = np.zeros_like(revealed)
    expected[9:21, 9:15] = True
    np.testing.assert_array_equal(mask, expected)


def test_motion_below_the_threshold_is_not_an_occlusion():
    prev, cur, _ = _moving_square(1)  # 1 px, threshold 1 px: carried
    assert not occlusion_mask(cur, prev, threshold_px=1.0, dilate_px=0).any()
    assert occlusion_mask(cur, prev, threshold_px=0.5, dilate_px=0).sum() == 10


def test_pixels_that_come_from_outside_the_frame_are_marked():
    # everything moved 3 px right: the left 3 columns were outside the previous frame
    cur = _frame(2, _uniform(W, H, xy=(-3.0, 0.0)))
    prev = _frame(1, _uniform(W, H, zw=(-3.0, 0.0)))
    mask = occlusion_mask(cur, prev, dilate_px=0)
    expected = np.zeros((H, W), bool)
    expected[:, :3] = True
    np.testing.assert_array_equal(mask, expected)


def test_the_mask_is_resized_to_the_generation_size_keeping_every_occlusion():
    prev, cur, revealed = _moving_square(4)
    small = occlusion_mask(cur, prev, dilate_px=0, size=(20, 15))
    assert small.shape == (15, 20)
    # every revealed render pixel lands in a generation pixel that is marked
    rows, cols = np.nonzero(revealed)
    assert small[rows * 15 // H, cols * 20 // W].all()
    expected = np.zeros((15, 20), bool)
    expected[5:10, 5:7] = True  # rows 10..19 and cols 10..13 of the render, halved
    np.testing.assert_array_equal(small, expected)
    big = occlusion_mask(cur, prev, dilate_px=0, size=(80, 60))
    np.testing.assert_array_equal(big, np.repeat(np.repeat(revealed, 2, axis=0), 2, axis=1))


def test_resizing_a_mask_by_a_fraction_covers_every_true_pixel():
    mask = np.zeros((30, 40), bool)
    mask[7, 13] = True
    for size in ((17, 11), (23, 37), (40, 30)):
        resized = motion.resize_mask(mask, size)
        assert resized.shape == (size[1], size[0])
        row, col = int((7 + 0.5) * size[1] / 30), int((13 + 0.5) * size[0] / 40)
        assert resized[row, col]
        assert 1 <= resized.sum() <= 4


def test_dilation_grows_a_pixel_into_a_square():
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    grown = motion.dilate(mask, 2)
    expected = np.zeros_like(mask)
    expected[2:7, 2:7] = True
    np.testing.assert_array_equal(grown, expected)
    corner = np.zeros((4, 4), bool)
    corner[0, 0] = True
    assert motion.dilate(corner, 10).all()


# --- the world background under a moving camera -------------------------------------------

def _camera(origin, target, params: CameraParams) -> CameraView:
    return CameraView(look_at(np.asarray(origin, float), np.asarray(target, float)), params)


def _analytic_background_flow(cur: CameraView, prev: CameraView, width: int,
                              height: int) -> np.ndarray:
    """Where each pixel's direction lands in `prev`, from projection.py's own camera maths:
    points very far along each pixel's ray, projected into the previous camera."""
    views = [ProjectionView.from_camera(c.lens, c.world_from_camera, (width, height))
             for c in (cur, prev)]
    far = pixel_points(views[0], np.full((height, width), 1e7))
    uv = views[1].frame_coordinates(far.reshape(-1, 3)).reshape(height, width, 2)
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    return np.stack([uv[..., 0] * width - cols, (1 - uv[..., 1]) * height - rows], axis=-1)


@pytest.mark.parametrize("params", [
    CameraParams(),
    CameraParams(lens=24.0, sensor_fit="VERTICAL", shift_x=0.1, shift_y=-0.05),
], ids=["default", "vertical-fit-shifted"])
def test_background_pixels_follow_the_cameras_rotation(params):
    # a pan and a tilt with the camera moving 0.5 m: the sky moves by the rotation only
    prev_camera = _camera((0, -10, 2), (0, 0, 1), params)
    cur_camera = _camera((0.5, -10, 2), (2, 0, 1.5), params)
    everything = np.ones((H, W), bool)
    cur = _frame(2, _uniform(W, H), cur_camera, everything)
    prev = _frame(1, _uniform(W, H), prev_camera, everything)
    flow = flow_to_previous(cur, prev)
    expected = _analytic_background_flow(cur_camera, prev_camera, W, H)
    assert np.abs(expected).max() > 3  # the sky really moves
    np.testing.assert_allclose(flow, expected, atol=2e-3)  # 0.5 m at 1e7 m: ~5e-4 px


def test_a_zoom_moves_the_background_by_the_lens_change():
    prev_camera = _camera((0, -10, 2), (0, 0, 2), CameraParams(lens=50.0))
    cur_camera = _camera((0, -10, 2), (0, 0, 2), CameraParams(lens=60.0))
    everything = np.ones((H, W), bool)
    flow = flow_to_previous(_frame(2, _uniform(W, H), cur_camera, everything),
                            _frame(1, _uniform(W, H), prev_camera, everything))
    np.testing.assert_allclose(flow, _analytic_background_flow(cur_camera, prev_camera, W, H),
                               atol=1e-6)
    # zooming in: the corner pixel came from nearer the centre
    assert flow[0, 0, 0] > 0 and flow[0, 0, 1] > 0


def test_geometry_keeps_the_vector_pass_and_only_background_is_reprojected():
    prev_camera = _camera((0, -10, 2), (0, 0, 1), CameraParams())
    cur_camera = _camera((0, -10, 2), (1, 0, 1), CameraParams())
    background = np.zeros((H, W), bool)
    background[:10] = True
    vectors = _uniform(W, H, xy=(1.5, 0.0))
    vectors[background] = 0.0  # what Blender writes for the world
    cur = _frame(2, vectors, cur_camera, background)
    prev = _frame(1, _uniform(W, H), prev_camera, background)
    flow = flow_to_previous(cur, prev)
    np.testing.assert_allclose(flow[10:], np.broadcast_to([1.5, 0.0], (H - 10, W, 2)))
    np.testing.assert_allclose(flow[:10],
                               _analytic_background_flow(cur_camera, prev_camera, W, H)[:10],
                               atol=1e-6)
    # without the previous frame there is nothing to reproject from: the pass's zeros stay
    np.testing.assert_array_equal(flow_to_previous(cur, None)[:10], 0.0)


def test_a_panning_camera_over_the_sky_only_masks_what_came_into_view():
    params = CameraParams()
    prev_camera = _camera((0, -10, 2), (0, 0, 2), params)
    cur_camera = _camera((0, -10, 2), (0.3, 0, 2), params)  # pan right
    everything = np.ones((H, W), bool)
    cur = _frame(2, _uniform(W, H), cur_camera, everything)
    prev = _frame(1, _uniform(W, H), prev_camera, everything)
    mask = occlusion_mask(cur, prev, dilate_px=0)
    flow = flow_to_previous(cur, prev)
    came_in = motion.out_of_frame(flow)
    assert came_in[:, -1].all() and not came_in[:, 0].any()  # panning right: new on the right
    np.testing.assert_array_equal(mask, came_in)


def test_an_orthographic_camera_leaves_the_background_still():
    ortho = CameraView(np.eye(4), CameraParams(ortho=True))
    turned = CameraView(look_at(np.zeros(3), np.array([1.0, 0, -5])), CameraParams(ortho=True))
    everything = np.ones((H, W), bool)
    flow = flow_to_previous(_frame(2, _uniform(W, H), turned, everything),
                            _frame(1, _uniform(W, H), ortho, everything))
    np.testing.assert_array_equal(flow, 0.0)


def test_frames_that_are_not_adjacent_are_refused():
    with pytest.raises(ValueError, match="adjacent frame"):
        flow_to_previous(_frame(3, _uniform(W, H)), _frame(1, _uniform(W, H)))
    with pytest.raises(ValueError, match="different sizes"):
        flow_to_previous(_frame(2, _uniform(W, H)), _frame(1, _uniform(W + 1, H)))


def test_a_frame_whose_arrays_disagree_is_refused():
    with pytest.raises(ValueError, match="4 vector channels"):
        MotionFrame(1, np.zeros((H, W)), np.zeros((H, W, 3)), np.zeros((H, W), bool), STILL)


# --- files ------------------------------------------------------------------------------

def test_a_saved_frame_loads_back_the_same(tmp_path):
    rng = np.random.default_rng(3)
    params = CameraParams(lens=35.0, sensor_fit="VERTICAL", shift_x=0.2, clip_end=500.0)
    camera = _camera((1, -8, 3), (0, 0, 1), params)
    colour = tmp_path / "colour_0007.png"
    colour.write_bytes(b"not read")
    frame = MotionFrame(7, rng.random((H, W), dtype=np.float32), rng.random((H, W, 4)),
                        rng.random((H, W)) > 0.5, camera, colour)
    path = save_motion(frame, tmp_path)
    assert path == tmp_path / "motion_0007.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colour_0007.png", "motion_0007.npz"]
    assert (os.stat(path).st_mode & 0o777) == 0o666 & ~_umask()
    # the shot folder moves (a farm worker mounts it elsewhere): the colour path follows
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("colour_0007.png", "motion_0007.npz"):
        (tmp_path / name).rename(moved / name)
    loaded = load_motion(moved / "motion_0007.npz")
    assert loaded.frame == 7 and loaded.colour == moved / "colour_0007.png"
    np.testing.assert_array_equal(loaded.depth, frame.depth)
    np.testing.assert_array_equal(loaded.vectors, frame.vectors)
    np.testing.assert_array_equal(loaded.background, frame.background)
    np.testing.assert_array_equal(loaded.camera.world_from_camera, camera.world_from_camera)
    assert loaded.camera.lens == params


def test_a_frame_without_colour_loads_without_colour(tmp_path):
    loaded = load_motion(save_motion(_frame(1, _uniform(W, H)), tmp_path))
    assert loaded.colour is None and loaded.camera.lens == CameraParams()


def test_a_file_that_is_not_a_capture_says_so(tmp_path):
    junk = tmp_path / "motion_0001.npz"
    junk.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable motion capture"):
        load_motion(junk)
    np.savez(tmp_path / "other.npz", depth=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="missing"):
        load_motion(tmp_path / "other.npz")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
