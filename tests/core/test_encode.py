"""Depth encoding without Blender: conventions, range policies, edge values, file formats."""

from __future__ import annotations

import numpy as np
import pytest
from t2i_src.blender_t2i.core import depth_encoding as encode
from t2i_src.blender_t2i.core.depth_encoding import DepthRange


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


def test_auto_range_of_a_flat_wall_is_still_a_range():
    z = np.full((8, 8), 5.0, np.float32)
    depth_range = encode.auto_range(z, np.zeros(z.shape, bool))
    assert depth_range.near == pytest.approx(5.0) and depth_range.far > depth_range.near
    assert encode.inverse_depth(z, np.zeros(z.shape, bool), depth_range).min() == 1.0


def test_auto_range_of_nothing_is_an_error():
    z = np.full((4, 4), 1e10, np.float32)
    with pytest.raises(ValueError, match="sees nothing"):
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


