"""Depth encoding without Blender: conventions, range policies, edge values, file formats."""

from __future__ import annotations

import numpy as np
import pytest
from t2i_src.t2i_core import depth_encoding as encode
from t2i_src.t2i_core.depth_encoding import DepthRange


def _ramp(near=2.0, far=10.0, n=64) -> np.ndarray:
    return np.linspace(near, far, n, dtype=np.float32)[None, :].repeat(4, axis=0)


@pytest.mark.parametrize("encoding", encode.ENCODINGS)
def test_nearer_is_brighter_and_the_range_ends_are_white_and_black(encoding):
    z = _ramp()
    value = encode.encode_depth(z, np.zeros(z.shape, bool), DepthRange(2.0, 10.0), encoding)
    assert value[0, 0] == pytest.approx(1.0) and value[0, -1] == pytest.approx(0.0)
    assert np.all(np.diff(value[0]) < 0)  # strictly monotonic: nearer = brighter


def test_inverse_depth_is_linear_in_one_over_z():
    z = np.array([[2.0, 4.0, 10.0]], np.float32)
    value = encode.inverse_depth(z, np.zeros(z.shape, bool), DepthRange(2.0, 10.0))
    expected = (1 / 4 - 1 / 10) / (1 / 2 - 1 / 10)
    np.testing.assert_allclose(value, [[1.0, expected, 0.0]], rtol=1e-6)


def test_linear_depth_is_linear_in_metres():
    z = np.array([[2.0, 6.0, 10.0]], np.float32)
    value = encode.linear_depth(z, np.zeros(z.shape, bool), DepthRange(2.0, 10.0))
    np.testing.assert_allclose(value, [[1.0, 0.5, 0.0]], rtol=1e-6)


def test_outside_the_range_clamps_and_background_is_black():
    z = np.array([[1.0, 20.0, 5.0, 1e10]], np.float32)
    background = encode.background_mask(z, clip_end=100.0)
    assert background.tolist() == [[False, False, False, True]]
    for encoding in encode.ENCODINGS:
        value = encode.encode_depth(z, background, DepthRange(2.0, 10.0), encoding)
        assert value[0, 0] == 1.0 and value[0, 1] == 0.0 and value[0, 3] == 0.0


def test_nan_inf_and_non_positive_values_are_background():
    z = np.array([[np.nan, np.inf, -np.inf, 0.0, -3.0, 5.0]], np.float32)
    background = encode.background_mask(z, clip_end=100.0)
    assert background.tolist() == [[True, True, True, True, True, False]]
    value = encode.encode_depth(z, background, DepthRange(2.0, 10.0))
    assert np.isfinite(value).all() and value[0, :5].tolist() == [0.0] * 5


def test_eevee_background_at_clip_end_is_background():
    z = np.array([[50.0012, 49.0, 50.0]], np.float32)
    assert encode.background_mask(z, clip_end=50.0).tolist() == [[True, False, True]]


def test_auto_range_ignores_outliers_and_background():
    rng = np.random.default_rng(0)
    z = rng.uniform(4.0, 8.0, (100, 100)).astype(np.float32)
    z[0, 0], z[0, 1] = 0.01, 900.0  # two stray pixels
    z[50:, :] = 1e10
    background = encode.background_mask(z, 1000.0)
    depth_range = encode.auto_range(z, background)
    assert 4.0 <= depth_range.near < 4.1
    # the farthest surface (the 99.5th percentile, just under 8 m) is dark grey, not black
    value = encode.inverse_depth(np.array([[7.98]], np.float32), np.zeros((1, 1), bool),
                                 depth_range)
    assert value[0, 0] == pytest.approx(encode.AUTO_FAR_LEVEL, abs=0.01)


def test_auto_range_keeps_the_farthest_surface_apart_from_the_background():
    z = np.array([[2.0, 10.0, 1e10]], np.float32)
    background = encode.background_mask(z, 100.0)
    value = encode.to_uint8(encode.inverse_depth(z, background, encode.auto_range(
        z, background, low=0, high=100)))
    assert value.tolist() == [[255, 13, 0]]


# The 8-bit grey of the farthest surface by far/near ratio: 13 (= 0.05) wherever the margin can
# be met; inverse depth cannot once far/near reaches 20 (the farthest surface can get at most
# near/far), so there it gets 90% of that (far end 10x the farthest surface); below a ratio of
# 1.25 the range is widened so a flat wall is mid grey.
FARTHEST_GREY = {
    "INVERSE": {1.0: 134, 1.01: 128, 19.9: 12, 20.0: 12, 25.0: 9, 1e3: 0, 1e5: 0},
    "LINEAR": {1.0: 134, 1.01: 128, 19.9: 13, 20.0: 13, 25.0: 13, 1e3: 13, 1e5: 13},
}
NEAREST_GREY = {1.0: 134, 1.01: 139}  # and 255 (white) from a ratio of 1.25 on


@pytest.mark.parametrize("encoding", encode.ENCODINGS)
@pytest.mark.parametrize("ratio", [1.0, 1.01, 19.9, 20.0, 25.0, 1e3, 1e5])
def test_auto_range_is_valid_at_any_depth_ratio(encoding, ratio):
    """A floor from 0.9 m out to 0.9 * ratio m (the issue: 0.9 m to the horizon failed)."""
    floor = np.geomspace(0.9, 0.9 * ratio, 4000).reshape(40, 100)
    z = np.concatenate([np.full((4, 100), 1e10), floor]).astype(np.float32)  # sky above
    background = encode.background_mask(z, 1e6)
    depth_range = encode.auto_range(z, background, encoding, low=0, high=100)
    assert 0 < depth_range.near < depth_range.far < np.inf
    value = encode.encode_depth(z, background, depth_range, encoding)
    seen = value[~background]
    assert np.isfinite(value).all() and np.all(np.diff(seen) <= 0)  # nearer is never darker
    assert seen[-1] > 0.0  # the farthest surface is above the background, if only in float
    eight = encode.to_uint8(value)
    assert eight[~background][-1] == FARTHEST_GREY[encoding][ratio]
    assert eight[~background][0] == NEAREST_GREY.get(ratio, 255)
    assert (eight[background] == 0).all()


@pytest.mark.parametrize("encoding", encode.ENCODINGS)
def test_a_flat_wall_is_mid_grey_on_a_black_background(encoding):
    z = np.full((8, 8), 5.0, np.float32)
    z[:, :2] = 1e10
    background = encode.background_mask(z, 100.0)
    depth_range = encode.auto_range(z, background, encoding)
    assert depth_range.near < 5.0 < depth_range.far
    assert depth_range.far / depth_range.near > encode.AUTO_MIN_RATIO  # room for relief
    eight = encode.to_uint8(encode.encode_depth(z, background, depth_range, encoding))
    assert set(eight[~background].tolist()) == {134} and set(eight[background].tolist()) == {0}


def test_a_one_pixel_foreground_is_a_range():
    z = np.full((16, 16), 1e10, np.float32)
    z[7, 9] = 3.0
    background = encode.background_mask(z, 100.0)
    depth_range = encode.auto_range(z, background)
    eight = encode.to_uint8(encode.inverse_depth(z, background, depth_range))
    assert eight[7, 9] == 134 and eight.sum() == 134


def test_a_nearly_flat_scene_is_not_stretched_from_white_to_black():
    """1% of depth is 11 grey levels, not 242: relief on a wall is not blown up into a ramp."""
    z = np.linspace(5.0, 5.05, 64, dtype=np.float32)[None, :]
    eight = encode.to_uint8(encode.inverse_depth(z, np.zeros(z.shape, bool), encode.auto_range(
        z, np.zeros(z.shape, bool), low=0, high=100))).astype(int)
    assert 8 <= eight[0, 0] - eight[0, -1] <= 14 and 100 < eight[0, -1] < eight[0, 0] < 160


@pytest.mark.parametrize("encoding", encode.ENCODINGS)
def test_encoding_stays_monotonic_and_finite_far_beyond_a_ratio_of_1e5(encoding):
    z = np.geomspace(1e-4, 1e8, 5000, dtype=np.float64)[None, :].astype(np.float32)
    background = np.zeros(z.shape, bool)
    depth_range = encode.auto_range(z, background, encoding, low=0, high=100)
    value = encode.encode_depth(z, background, depth_range, encoding)
    assert np.isfinite(value).all() and value.min() >= 0.0 and value.max() == 1.0
    assert np.all(np.diff(value[0]) <= 0) and value[0, -1] > 0.0


def test_linear_has_its_own_far_margin():
    """Linear puts the farthest surface at the margin at any ratio, with a far end only
    5% of the depth span beyond it (the inverse rule would overshoot or fail)."""
    for near, far in ((1.0, 4.0), (0.9, 21.4), (1.0, 40.0), (0.5, 5000.0)):
        got = encode.auto_range_for(near, far, encode.LINEAR)
        assert got.near == pytest.approx(near)
        assert got.far == pytest.approx(far + 0.05 / 0.95 * (far - near))
        z = np.array([[far]], np.float32)
        value = encode.linear_depth(z, np.zeros(z.shape, bool), got)
        assert value[0, 0] == pytest.approx(encode.AUTO_FAR_LEVEL, rel=1e-4)


@pytest.mark.parametrize("ratio", [2.0, 18.0, 19.9, 20.0, 23.8, 1e3, 1e5])
def test_inverse_far_end_stays_within_ten_times_the_farthest_surface(ratio):
    got = encode.auto_range_for(1.0, ratio, encode.INVERSE)
    assert got.near == pytest.approx(1.0) and ratio < got.far <= 10.0 * ratio * (1 + 1e-9)


def test_the_issues_street_gets_a_range():
    """A post 0.9 m away and houses 21.4 m away: near 0.9 m and far -21.4 m before."""
    got = encode.auto_range_for(0.9, 21.4)
    assert (got.near, got.far) == pytest.approx((0.9, 214.0))


def test_camera_clip_out_to_1e6_is_refused_on_the_8_bit_map():
    z = np.geomspace(60.0, 300.0, 64, dtype=np.float32)[None, :]
    background = np.zeros(z.shape, bool)
    clip = encode.resolve_range("CLIP", z, background, clip=(0.1, 1e6), manual=(1.0, 2.0),
                                locked=None)
    value = encode.inverse_depth(z, background, clip)
    assert value.min() > 0.0  # not black in float: only the 8-bit map sent is all black
    with pytest.raises(encode.RangeError, match=r"Camera Clip's range 0.1-1e\+06 m .*"
                                                r"\(60-300 m\) below 1/255.*all black: use the "
                                                r"Auto or Manual range"):
        encode.check_map_shows_depth(encode.to_uint8(value), z, background, clip, "CLIP")


def test_a_linear_map_all_white_is_refused_and_one_grey_pixel_is_enough():
    z = np.geomspace(1.0, 10.0, 64, dtype=np.float32)[None, :]
    background = np.zeros(z.shape, bool)
    clip = encode.DepthRange(0.1, 1e6)
    eight = encode.to_uint8(encode.linear_depth(z, background, clip))
    with pytest.raises(encode.RangeError, match="all white"):
        encode.check_map_shows_depth(eight, z, background, clip, "CLIP")
    eight[0, -1] = 254
    encode.check_map_shows_depth(eight, z, background, clip, "CLIP")


@pytest.mark.parametrize(("policy", "advice"), [("MANUAL", "set Near and Far"),
                                                ("LOCKED", "Lock Depth Range again")])
def test_a_map_all_black_says_what_to_change_for_each_policy(policy, advice):
    z = np.full((4, 4), 50.0, np.float32)
    background = np.zeros(z.shape, bool)
    depth_range = encode.DepthRange(1.0, 5.0)
    eight = encode.to_uint8(encode.inverse_depth(z, background, depth_range))
    with pytest.raises(encode.RangeError, match=advice):
        encode.check_map_shows_depth(eight, z, background, depth_range, policy)


@pytest.mark.parametrize(("policy", "message"), [
    ("MANUAL", "Manual depth range needs 0 < Near < Far, got 30-20 m: set Near below Far"),
    ("CLIP", "Camera Clip's range needs Clip Start below Clip End, got 50-10 m")])
def test_a_fixed_range_the_wrong_way_round_says_what_to_change(policy, message):
    with pytest.raises(encode.RangeError, match=message):
        encode.resolve_range(policy, _ramp(), np.zeros((4, 64), bool), clip=(50.0, 10.0),
                             manual=(30.0, 20.0), locked=None)


def test_auto_range_of_nothing_is_an_error():
    z = np.full((4, 4), 1e10, np.float32)
    with pytest.raises(encode.RangeError, match="sees nothing"):
        encode.auto_range(z, encode.background_mask(z, 100.0))


@pytest.mark.parametrize(("policy", "expected"), [
    ("CLIP", DepthRange(0.1, 100.0)), ("MANUAL", DepthRange(3.0, 7.0)),
    ("LOCKED", DepthRange(2.5, 9.0))])
def test_range_policies(policy, expected):
    z = _ramp()
    got = encode.resolve_range(policy, z, np.zeros(z.shape, bool), clip=(0.1, 100.0),
                               manual=(3.0, 7.0), locked=(2.5, 9.0))
    assert got == expected


def test_auto_policy_follows_the_frame():
    z = _ramp(3.0, 6.0)
    got = encode.resolve_range("AUTO", z, np.zeros(z.shape, bool), clip=(0.1, 100.0),
                               manual=(1.0, 2.0), locked=None)
    assert got == encode.auto_range(z, np.zeros(z.shape, bool))
    assert got.near == pytest.approx(3.0, rel=0.01) and 6.0 < got.far < 6.5  # far margin


def test_locked_policy_without_a_locked_range_says_what_to_do():
    with pytest.raises(ValueError, match="Lock Depth Range"):
        encode.resolve_range("LOCKED", _ramp(), np.zeros((4, 64), bool), clip=(0.1, 100.0),
                             manual=(1.0, 2.0), locked=None)


@pytest.mark.parametrize(("near", "far"), [(0.0, 5.0), (5.0, 5.0), (6.0, 5.0), (1.0, np.inf)])
def test_invalid_ranges_are_refused(near, far):
    with pytest.raises(ValueError, match="range"):
        DepthRange(near, far)


def test_union_range_covers_every_frame():
    frames = [DepthRange(3.0, 8.0), DepthRange(2.0, 6.0), DepthRange(4.0, 12.0)]
    assert encode.union_range(frames) == DepthRange(2.0, 12.0)
    with pytest.raises(ValueError):
        encode.union_range([])


def test_quantisation_keeps_the_ends_and_16_bit_has_no_8_bit_banding():
    value = np.linspace(0.0, 1.0, 4096, dtype=np.float32)
    assert encode.to_uint8(value)[[0, -1]].tolist() == [0, 255]
    assert encode.to_uint16(value)[[0, -1]].tolist() == [0, 65535]
    assert len(np.unique(encode.to_uint8(value))) == 256
    assert len(np.unique(encode.to_uint16(value))) == 4096


def test_size_limit():
    encode.check_size(4096, 2048, 4096)
    with pytest.raises(ValueError, match="Max Size"):
        encode.check_size(4097, 100, 4096)
    with pytest.raises(ValueError, match="empty"):
        encode.check_size(0, 100, 4096)


def test_z_for_file_uses_blenders_background_value():
    z = np.array([[5.0, np.nan, 1e10]], np.float32)
    out = encode.z_for_file(z, encode.background_mask(z, 100.0))
    assert out.tolist() == [[5.0, 1e10, 1e10]] and out.dtype == np.float32


