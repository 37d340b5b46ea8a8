"""A small OpenEXR writer (numpy + zlib) for float depth maps: no bpy, no image datablocks.

Writes 32-bit float scanline files with ZIP compression (16 lines per block), the layout every
EXR reader (Blender, Nuke, OpenImageIO) accepts. Files are written atomically.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .files import write_bytes_atomic

_FLOAT = 2
_ZIP_COMPRESSION = 3
_LINES_PER_BLOCK = 16


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _zip_block(raw: bytes) -> bytes:
    """OpenEXR's ZIP: bytes split into even/odd halves, delta-coded, then deflated."""
    data = np.frombuffer(raw, dtype=np.uint8)
    reordered = np.concatenate([data[0::2], data[1::2]])
    delta = reordered.astype(np.int16)
    delta[1:] = (reordered[1:].astype(np.int16) - reordered[:-1].astype(np.int16) + 128) & 0xFF
    return zlib.compress(delta.astype(np.uint8).tobytes(), 6)


def encode_exr(channels: dict[str, np.ndarray]) -> bytes:
    """EXR bytes for equally shaped (H, W) float arrays, top row first, keyed by channel name."""
    names = sorted(channels)  # EXR stores channels in alphabetical order
    planes = [np.asarray(channels[name], dtype="<f4") for name in names]
    height, width = planes[0].shape
    if any(plane.shape != (height, width) for plane in planes):
        raise ValueError("all EXR channels must have the same shape")
    chlist = b"".join(name.encode() + b"\0" + struct.pack("<iB3xii", _FLOAT, 0, 1, 1)
                      for name in names) + b"\0"
    box = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = (b"\x76\x2f\x31\x01" + struct.pack("<i", 2)
              + _attribute("channels", "chlist", chlist)
              + _attribute("compression", "compression", bytes([_ZIP_COMPRESSION]))
              + _attribute("dataWindow", "box2i", box)
              + _attribute("displayWindow", "box2i", box)
              + _attribute("lineOrder", "lineOrder", b"\0")
              + _attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + _attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
              + _attribute("screenWindowWidth", "float", struct.pack("<f", 1.0))
              + b"\0")
    blocks = []
    for y in range(0, height, _LINES_PER_BLOCK):
        rows = range(y, min(y + _LINES_PER_BLOCK, height))
        raw = b"".join(plane[row].tobytes() for row in rows for plane in planes)
        packed = _zip_block(raw)
        if len(packed) >= len(raw):  # incompressible blocks are stored raw, as the spec allows
            packed = raw
        blocks.append(struct.pack("<ii", y, len(packed)) + packed)
    offsets, position = [], len(header) + 8 * len(blocks)
    for block in blocks:
        offsets.append(position)
        position += len(block)
    return header + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(blocks)


def write_exr(path: str | os.PathLike, channels: dict[str, np.ndarray]) -> Path:
    return write_bytes_atomic(path, encode_exr(channels))


def write_grey_exr(path: str | os.PathLike, values: np.ndarray) -> Path:
    """One float map as R = G = B, which every viewer shows as grey."""
    return write_exr(path, {"R": values, "G": values, "B": values})
