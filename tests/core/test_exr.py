"""The EXR reader takes back what the writer wrote, bit for bit, and refuses anything broken with
a ValueError that says why (the backend turns that into a BAD_REQUEST)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from t2i_src.t2i_core import exr


def _depth(shape: tuple[int, int], seed: int = 1) -> np.ndarray:
    z = np.random.default_rng(seed).uniform(0.1, 100.0, shape).astype(np.float32)
    z[0, 0] = 1e10  # background, as the capture writes it
    return z


@pytest.mark.parametrize("shape", [(1, 1), (37, 23), (64, 96)])
def test_decode_returns_every_channel_the_encoder_wrote(shape):
    z = _depth(shape)
    planes = exr.decode_exr(exr.encode_exr({"R": z, "G": z * 2, "B": np.zeros(shape, np.float32)}))
    assert sorted(planes) == ["B", "G", "R"]
    np.testing.assert_array_equal(planes["R"], z)
    np.testing.assert_array_equal(planes["G"], z * 2)
    np.testing.assert_array_equal(planes["B"], 0.0)
    assert all(plane.dtype == np.float32 for plane in planes.values())


def test_round_trips_compressed_and_stored_blocks(tmp_path):
    """A smooth map deflates (ZIP blocks); random bits do not, so their blocks are stored raw."""
    smooth = np.tile(np.linspace(1.0, 20.0, 40, dtype=np.float32), (33, 1))
    path = exr.write_grey_exr(tmp_path / "smooth.exr", smooth)
    np.testing.assert_array_equal(exr.read_grey_exr(path), smooth)
    assert path.stat().st_size < smooth.nbytes
    bits = np.random.default_rng(2).integers(0, 2**32, (33, 40), np.uint32).view(np.float32)
    path = exr.write_exr(tmp_path / "noise.exr", {"Z": bits})
    assert path.stat().st_size > bits.nbytes
    assert exr.read_exr(path)["Z"].tobytes() == bits.tobytes()  # NaN patterns included


def test_a_single_or_z_channel_is_the_grey_map(tmp_path):
    z = _depth((5, 7))
    exr.write_exr(tmp_path / "v.exr", {"V": z})
    exr.write_exr(tmp_path / "z.exr", {"R": z * 0, "Z": z})
    np.testing.assert_array_equal(exr.read_grey_exr(tmp_path / "v.exr"), z)
    np.testing.assert_array_equal(exr.read_grey_exr(tmp_path / "z.exr"), z)
    exr.write_exr(tmp_path / "xy.exr", {"X": z, "Y": z})
    with pytest.raises(ValueError, match="X, Y"):
        exr.read_grey_exr(tmp_path / "xy.exr")


def test_every_truncation_is_a_value_error():
    data = exr.encode_exr({"R": _depth((20, 6))})
    for length in range(len(data)):
        with pytest.raises(ValueError):
            exr.decode_exr(data[:length])


@pytest.mark.parametrize("where", [slice(-4, None), slice(-12, -8)], ids=["checksum", "data"])
def test_corrupt_compressed_data_is_a_value_error(where):
    """One ZIP block, its zlib stream last in the file: damage its checksum or its data."""
    data = bytearray(exr.encode_exr({"R": np.tile(np.arange(64, dtype=np.float32), (16, 1))}))
    data[where] = bytes(b ^ 0x5A for b in data[where])
    with pytest.raises(ValueError, match="compressed block"):
        exr.decode_exr(bytes(data))


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: b"\x89PNG" + d[4:], "magic"),
    (lambda d: d[:4] + struct.pack("<i", 2 | 0x200) + d[8:], "scanline"),
    (lambda d: d.replace(b"compression\0compression\0\x01\0\0\0\x03",
                         b"compression\0compression\0\x01\0\0\0\x04"), "PIZ compression"),
])
def test_layouts_it_does_not_read_are_named(change, message):
    data = exr.encode_exr({"R": _depth((4, 4))})
    with pytest.raises(ValueError, match=message):
        exr.decode_exr(change(data))


def test_a_huge_data_window_is_refused_before_allocating():
    data = exr.encode_exr({"R": _depth((4, 4))})
    box = struct.pack("<iiii", 0, 0, 3, 3)
    huge = struct.pack("<iiii", 0, 0, 99_999, 99_999)
    with pytest.raises(ValueError, match="data window"):
        exr.decode_exr(data.replace(b"dataWindow\0box2i\0\x10\0\0\0" + box,
                                    b"dataWindow\0box2i\0\x10\0\0\0" + huge))


@pytest.mark.parametrize(("compression", "deflate"), [(0, False), (2, True)], ids=["none", "zips"])
def test_reads_one_line_blocks_uncompressed_or_zips(monkeypatch, compression, deflate):
    """The other scanline layouts Blender can write, made by the writer itself set to them."""
    monkeypatch.setattr(exr, "_ZIP_COMPRESSION", compression)
    monkeypatch.setattr(exr, "_LINES_PER_BLOCK", 1)
    if not deflate:
        monkeypatch.setattr(exr, "_zip_block", lambda raw: raw + b"!")  # never smaller: raw
    z = np.repeat(np.linspace(1.0, 20.0, 5, dtype=np.float32)[:, None], 64, axis=1)
    data = exr.encode_exr({"R": z})
    monkeypatch.undo()
    assert (len(data) < z.nbytes) == deflate
    np.testing.assert_array_equal(exr.decode_exr(data)["R"], z)
